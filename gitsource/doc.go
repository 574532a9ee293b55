// Package gitsource watches Git repositories, reads commits and writes
// results back, on go-git, without ever checking out a work tree. It knows
// nothing about experiments: it moves refs, commits, trees and files.
//
// # Polling
//
// A Repository lists the refs to watch as RefPolicy patterns — branch names,
// branch globs ("exp/*") or full ref globs ("refs/pull/*/head"), each trusted
// or untrusted, each with an optional ResultsBranch for refs that cannot be
// pushed to. New(repo, cacheRoot) returns its Source. Source.Poll lists the
// server's refs once (go-git Remote.List, the cost of `git ls-remote`) and
// returns a RefChange for every watched ref that appeared, moved or
// disappeared; an unchanged repository costs that one listing and no fetch
// (Source.Stats counts them). The last observed commit per ref lives in
// memory; Observed/SetObserved let a caller persist it across restarts.
//
// A RefChange is Runnable when its ref is trusted, or when every new commit
// passed verification (below); Reason says why or why not, naming the
// commit and its author when one is refused.
//
// # Snapshots
//
// Source.Snapshot(ctx, ref, commit) fetches the ref shallowly (depth 1,
// single ref, no tags) into the repository's cache folder and opens the
// commit's tree. Later fetches of a ref whose previous head is cached ask
// for no depth, so the server sends only the commits since and the objects
// they changed (a depth-1 fetch would send the whole tree again). A cache
// that go-git cannot reconcile with the server ("object not found",
// typically after a force-push) is detected — the commit's tree must be
// complete — dropped and fetched again, once. A *Snapshot implements
// tree.Reader: ReadFile, Stat and ReadDir read blobs and trees straight from
// the object store (OpenFile streams a large one); TreeID gives the Git tree
// ID of any folder; ReadLink returns a symlink's target as data (symlinks
// are never followed); paths that are absolute or contain ".." and tree
// entries named "..", "." or containing '/' are refused with
// tree.ErrEscapes. Limits cap one file (MaxFileBytes, checked before a blob
// is read), the cache on disk and what one fetched pack inflates to
// (MaxRepoBytes; indexing a pack also stops with the operation's context),
// the commits one verification walks (MaxVerifyCommits) and the duration of
// one operation when the caller's context has no earlier deadline
// (Timeout).
//
// # Network bounds
//
// Every network operation (listing refs, fetching, pushing) ends by the
// operation's deadline: Limits.Timeout (default 5 minutes) or the caller's
// earlier one. Over HTTP(S) and SSH each connection must also make progress
// within Limits.IdleTimeout (default 60 seconds): the dial, the TLS or SSH
// handshake, waiting for the response and every read and write of a
// transfer, so a server that accepts and stays silent, or stalls in the
// middle of a pack, fails fast while a slow fetch that keeps receiving data
// runs on. go-git's SSH transport runs its handshake without the context,
// so gitsource routes the SSH dial through a private proxy dialer that
// applies both; HTTP(S) Git operations in the process use a transport
// installed for the "http" and "https" schemes (no keep-alive, no HTTP/2:
// a connection never outlives its operation). git:// has no dial hook:
// only the operation's deadline bounds it. A timeout is an ErrTimeout
// naming the repository, the operation and both limits.
//
// Memory: a Source holds about a kilobyte; Git storage is opened per
// operation with a 512 KiB object cache and closed afterwards, and blobs over
// 1 MiB are streamed from the pack. Close every Snapshot. A fetched pack is
// written to disk and indexed by gitsource itself (internal/gitpack), as `git
// index-pack` does: it holds ~60 bytes per object and the delta chain being
// resolved, where go-git's parser kept every delta base in memory (up to
// 96 MiB) until the pack was indexed.
//
// # Committing back
//
// Source.CommitBack(ctx, CommitRequest, MergeFunc) writes a set of files
// (nil content deletes a file or folder) as one commit on a branch: it
// fetches the branch head, edits the head's tree with plumbing (unchanged
// sub-trees are reused; new objects stay in memory and go straight into
// the push's pack, nothing is written to the cache), and pushes by commit
// ID with a lease: the update command names the head it built on, so the
// server swaps only if the branch is still there (a branch that CommitBack
// creates — CommitRequest.Create — only if it is still absent), like
// `git push --force-with-lease`. A branch deleted meanwhile (a merged pull
// request's) is never re-created: CommitBack fails with ErrBranchDeleted
// (a caller committing in batches stops setting Create once a result says
// BranchExists). If the result
// equals the head's tree, nothing is pushed and the result says
// NothingToCommit — a success. When the branch moved (before
// the commit or during the push), the MergeFunc rebuilds the change on the
// new head's tree (expsync adds run folders — first writer wins — and
// regenerates summaries), and the push is retried with exponential backoff
// and jitter, at most RetryPolicy.MaxAttempts times (then
// ErrRetriesExhausted). A missing branch the caller expects to be new
// (Create) is created from StartFrom (for example a pull request head) or
// as a root commit. Author, committer and
// message are the caller's; a message containing "{{" is a text/template
// over MessageData (branch, parent, paths). Commits can be signed with a
// PGPSigner or an SSHSigner.
//
// # Authentication and URLs
//
// Auth holds HTTPS basic credentials or a bearer token (and an optional CA
// bundle for servers with a private certificate authority), or an SSH private
// key checked against known_hosts (strict by default: no known_hosts, no
// connection; InsecureIgnoreHostKey must be set explicitly). ValidateURL,
// applied by New, refuses remote-helper URLs ("ext::", "fd::"), URLs and
// hosts starting with '-', control characters, passwords inside the URL,
// plain http unless allowed, and file:// URLs and local paths in controller
// mode. go-git drops credentials when a redirect leaves the origin.
//
// Every error is a *RepoError naming the repository by RedactURL (no
// userinfo, query or fragment) and the operation, wrapping a kind —
// ErrAuth, ErrHostKey, ErrCertificate, ErrRepositoryNotFound, ErrEmptyRepository,
// ErrRefNotFound, ErrCommitNotFound, ErrUnreachable, ErrTimeout,
// ErrRepoTooLarge, ErrUnverified, ErrPushRejected, ErrRetriesExhausted,
// ErrBranchDeleted —
// for errors.Is. Its text is scrubbed of the configured secrets and of any
// URL userinfo, and the underlying error is kept for unwrapping only when
// its own text is already clean.
//
// # Commit verification
//
// A VerifyPolicy lists allowed PGP keys (armored), SSH keys (authorized_keys
// lines; Git's "sshsig" signatures in namespace "git", RSA only with
// SHA-2) and expsync's own results-signing keys. Commits on untrusted refs
// are always verified, on trusted refs when Required is set. Verification
// fetches the new commits — everything the cache does not hold yet; with an
// empty cache the heads of (up to four) trusted refs are fetched first, so
// the same holds on a first sight; with no trusted ref and nothing verified
// before, an untrusted ref's whole history (only a trusted ref taking its
// baseline, below, is fetched head alone) — and checks every commit from
// the new head back to commits verified before, to the history of trusted
// refs the cache holds, or to the fetched history's boundary (commits the
// trusted history already has). A boundary proves nothing while the cache
// holds commits other operations fetched without their parents (a snapshot,
// a results branch started from a pull request) that are not accepted
// history: then the cache is dropped and the ref verified afresh. One
// unsigned or unknown commit refuses the change. Verified commits are
// remembered in the cache folder (capped), so a ref that returns to a
// verified commit costs nothing.
//
// Turning verification on for a repository whose history is unsigned: a
// trusted ref with required verification that was never verified before,
// and whose head reaches no verified or trusted history, takes its signed
// head alone as its baseline. A signature covers the commit object, which
// names its tree and parents by hash, each parent naming its own, so the
// signer vouches for the history beneath — the trust Flux's
// source-controller places in a verified head — and no history has to be
// re-signed. An unsigned head is refused on first sight like any unsigned
// commit. From then on the walk above applies: every commit since the last
// verified one is checked, so an unsigned commit pushed after the baseline
// is refused even under a signed head. A ref takes a baseline once: the refs
// verified at least once are remembered in the cache folder (kept across
// cache drops and restarts), so neither a force-push to a history without
// a verified commit nor deleting and re-creating the ref moves the baseline
// to a head of the pusher's choosing; every commit of such a history is
// checked. A new trusted ref branched from verified history is checked down
// to it. Untrusted refs (pull requests) never take a baseline: on first
// sight as later, every commit between their head and trusted or verified
// history is checked; Poll verifies trusted refs first, so a baseline taken
// in the same Poll is history they stop at.
//
// VerifyPolicy.From names baselines explicitly: full commit IDs, each
// accepted only when signed by an allowed key, that count as verified (with
// their history) wherever a ref's history holds them. It is how a ref that
// took its baseline already moves on past an unsigned commit pushed after
// it that cannot be removed from history: name a signed commit above it;
// the commits after that one are each verified. A From commit is
// remembered as verified, so the setting can be removed afterwards.
//
// # Cache layout
//
//	<cacheRoot>/<sha256(URL)[:20 hex]>/git       bare, shallow repository (refs under refs/expsync/)
//	<cacheRoot>/<sha256(URL)[:20 hex]>/verified  verified commit IDs
//	<cacheRoot>/<sha256(URL)[:20 hex]>/verified-refs  refs verified at least once
//
// Operations on a cache folder are serialised within the process and,
// through an flock on <dir>/lock, across processes sharing the folder.
//
// Every incremental fetch adds a pack; a fetch that leaves more than 16
// merges the small ones into one (as `git repack --geometric=2` picks
// them), copying their objects byte for byte and building the index from
// theirs, so the cache keeps exactly the objects it had and the merge
// holds ~50 bytes per object merged and one old index (internal/gitpack). A
// Snapshot open across a merge reads the list of packs again when it
// meets a removed one.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package gitsource
