package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

const remoteName = "origin"

// listRefs lists the server's refs: the whole cost of polling an unchanged
// repository (like `git ls-remote`).
func (s *Source) listRefs(ctx context.Context) ([]*plumbing.Reference, error) {
	auth, err := s.repo.Auth.transportAuth(s.repo.URL)
	if err != nil {
		return nil, err
	}
	s.stats.lists.Add(1)
	remote := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: remoteName, URLs: []string{s.repo.URL}})
	px, done := sshProxy(ctx, s.repo.URL)
	defer done()
	refs, err := remote.ListContext(ctx, &git.ListOptions{Auth: auth, CABundle: s.repo.Auth.caBundle(), PeelingOption: git.AppendPeeled,
		ProxyOptions: px})
	if err != nil {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return nil, err
	}
	return refs, nil
}

// fetchStorer is the storage a fetch writes into: the cache storage, with
// received packs indexed by gitpack.Index rather than by
// go-git's parser, within the fetch's context (go-git indexes after the
// transfer, where nothing else watches the context) and the repository's
// size limit.
func (s *Source) fetchStorer(ctx context.Context, st storage.Storer) storage.Storer {
	if fs, ok := st.(*filesystem.Storage); ok {
		return gitpack.FetchStorage{Storage: fs, Dir: s.packDir(), Ctx: ctx, MaxInflated: s.limits.MaxRepoBytes}
	}
	return st
}

// fetchRef fetches ref into the cache (under cacheRef(ref)) with the given
// depth (1: shallow; 0: everything not reachable from what the cache has),
// without tags. It returns the fetched head. The caller holds the cache lock.
func (s *Source) fetchRef(ctx context.Context, st storage.Storer, ref string, depth int) (plumbing.Hash, error) {
	auth, err := s.repo.Auth.transportAuth(s.repo.URL)
	if err != nil {
		return plumbing.ZeroHash, err
	}
	s.stats.fetches.Add(1)
	remote := git.NewRemote(s.fetchStorer(ctx, st), &config.RemoteConfig{Name: remoteName, URLs: []string{s.repo.URL}})
	spec := config.RefSpec(fmt.Sprintf("+%s:%s", ref, cacheRef(ref)))
	px, done := sshProxy(ctx, s.repo.URL)
	defer done()
	err = remote.FetchContext(ctx, &git.FetchOptions{
		ProxyOptions: px,
		RemoteName:   remoteName,
		RefSpecs:     []config.RefSpec{spec},
		Depth:        depth,
		Tags:         git.NoTags,
		Auth:         auth,
		CABundle:     s.repo.Auth.caBundle(),
		Force:        true,
	})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		if ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (%v)", ctx.Err(), err)
		}
		return plumbing.ZeroHash, err
	}
	r, err := st.Reference(cacheRef(ref))
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("fetched ref is missing from the cache: %w", err)
	}
	return r.Hash(), nil // may be an annotated tag: callers peel
}

// ensureCommit makes commit (the head of ref at the last poll) available in
// the cache: a shallow fetch of ref, which also recovers from a cache that a
// force-push made inconsistent by dropping it and fetching again. depth is
// passed to fetchRef. The caller holds the cache lock (lockCache).
func (s *Source) ensureCommit(ctx context.Context, ref string, commit plumbing.Hash, depth int) error {
	st, unpin, err := s.ensureCommitOpen(ctx, ref, commit, depth)
	if err != nil {
		return err
	}
	defer unpin()
	return st.Close()
}

// ensureCommitOpen is ensureCommit returning the cache storage the commit
// was fetched into, open; the caller closes it. Reading the commit through
// it reuses the pack index the fetch built: a storage opened afresh loads
// the index from disk again and, at its first object read, go-git builds
// a second offset-to-hash map of the whole pack (~80 bytes per object).
// The storage is pinned (openPinnedStorage): the caller calls unpin after
// closing it.
func (s *Source) ensureCommitOpen(ctx context.Context, ref string, commit plumbing.Hash, depth int) (_ *filesystem.Storage, unpin func(), _ error) {
	op := "fetch " + ref
	if s.dropPending.Swap(false) {
		if err := s.dropCache(); err != nil {
			return nil, nil, s.wrap(op, err)
		}
	}
	_, statErr := os.Stat(s.gitDir())
	fresh := statErr != nil
	st, unpin, err := s.fetchPinned(ctx, ref, commit, depth)
	if err == nil && !fresh && s.overLimit() {
		// The cache grew over the limit across many fetches: start afresh
		// before deciding that the repository itself is too large.
		st.Close()
		unpin()
		if derr := s.dropCache(); derr != nil {
			return nil, nil, s.wrap(op, derr)
		}
		st, unpin, err = s.fetchPinned(ctx, ref, commit, depth)
	}
	if isCorruption(err) {
		// go-git cannot reconcile a shallow cache with a rewritten history
		// ("object not found"): start the cache afresh, once.
		if derr := s.dropCache(); derr != nil {
			return nil, nil, s.wrap(op, derr)
		}
		st, unpin, err = s.fetchPinned(ctx, ref, commit, depth)
	}
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return nil, nil, s.newError(op, ErrEmptyRepository, "")
		}
		if errors.Is(err, ErrRepoTooLarge) {
			// Refused while indexing: like a cache over the limit below,
			// the repository's cache is dropped.
			_ = s.dropCache()
		}
		return nil, nil, s.wrap(op, err)
	}
	if err := s.checkCacheSize(op); err != nil {
		st.Close()
		unpin()
		return nil, nil, err
	}
	// A merge only speeds later reads: the fetch succeeded, and the merged
	// pack replaces the old ones only once it is whole, so its failure
	// (a full disk, a cancelled context) fails nothing. A pack that cannot
	// be read whole is a corrupt cache, dropped by the next operation (not
	// now: the caller reads st, and a dropped folder no snapshot holds yet
	// is deleted at once) — else every later fetch would fail on it.
	if merged, err := s.consolidatePacks(ctx); errors.Is(err, gitpack.ErrMalformed) {
		s.dropPending.Store(true)
	} else if merged > 0 {
		st.Reindex() // it listed the packs now merged
	}
	return st, unpin, nil
}

// fetchPinned opens the cache storage, pinned (openPinnedStorage), and
// fetches the commit into it (fetchInto). On an error the storage is
// closed and unpinned.
func (s *Source) fetchPinned(ctx context.Context, ref string, commit plumbing.Hash, depth int) (*filesystem.Storage, func(), error) {
	st, unpinStorage, err := s.openPinnedStorage()
	if err != nil {
		return nil, nil, err
	}
	if err := s.fetchInto(ctx, st, ref, commit, depth); err != nil {
		st.Close()
		unpinStorage()
		return nil, nil, err
	}
	return st, unpinStorage, nil
}

// fetchInto fetches ref (and the commit, when not zero) into the open
// cache storage st, unless st already holds it, and checks that the
// commit's whole tree is there.
func (s *Source) fetchInto(ctx context.Context, st *filesystem.Storage, ref string, commit plumbing.Hash, depth int) error {
	if !commit.IsZero() && hasCommit(st, commit) && depth == 1 {
		// Cached by an earlier fetch; an incomplete tree (an
		// interrupted fetch, a lost object) counts as corruption.
		return treeComplete(st, commit, plumbing.ZeroHash)
	}
	incremental := hasRefs(st)
	fetchDepth := depth
	var previous plumbing.Hash // this ref's last fetched head, checked complete then
	if r, err := st.Reference(cacheRef(ref)); err == nil && depth == 1 && hasCommit(st, r.Hash()) {
		previous = peel(st, r.Hash())
		// A depth-1 fetch re-sends the whole tree even when the cache
		// holds the previous head. Without depth, the server sends only
		// the commits since that head and the objects they changed.
		fetchDepth = 0
	}
	head, err := s.fetchRef(ctx, st, ref, fetchDepth)
	if err != nil {
		return err
	}
	head = peel(st, head) // an annotated tag names its commit
	if !commit.IsZero() && head != commit && !hasCommit(st, commit) {
		// The ref moved on since the poll. Servers that allow it
		// (uploadpack.allowReachableSHA1InWant, GitHub) still give the
		// commit by ID; others cannot.
		if err := s.fetchCommit(ctx, st, commit); err != nil || !hasCommit(st, commit) {
			return fmt.Errorf("%w: asked for %s, the ref is now at %s", ErrCommitNotFound, commit, head)
		}
	}
	// The commit's whole tree must be present: go-git's shallow fetch
	// can leave objects out after a force-push (the server assumes we
	// hold what our old refs reach). A fetch into an empty cache sends
	// no "have" and is complete by construction.
	if !incremental {
		return nil
	}
	check := head
	if !commit.IsZero() {
		check = commit
	}
	var known plumbing.Hash
	if c, err := getCommit(st, previous); err == nil && !previous.IsZero() {
		known = c.TreeHash
	}
	return treeComplete(st, check, known)
}

func (s *Source) overLimit() bool {
	n, err := s.cacheBytes()
	return err == nil && n > s.limits.MaxRepoBytes
}

func (s *Source) checkCacheSize(op string) error {
	n, err := s.cacheBytes()
	if err != nil {
		return s.wrap(op, err)
	}
	if n > s.limits.MaxRepoBytes {
		_ = s.dropCache()
		return s.newError(op, ErrRepoTooLarge, "%d bytes fetched, limit %d bytes", n, s.limits.MaxRepoBytes)
	}
	return nil
}

// fetchCommit fetches one commit by ID (depth 1) when the server allows
// wanting a commit that is not a ref tip.
func (s *Source) fetchCommit(ctx context.Context, st storage.Storer, commit plumbing.Hash) error {
	auth, err := s.repo.Auth.transportAuth(s.repo.URL)
	if err != nil {
		return err
	}
	s.stats.fetches.Add(1)
	remote := git.NewRemote(s.fetchStorer(ctx, st), &config.RemoteConfig{Name: remoteName, URLs: []string{s.repo.URL}})
	spec := config.RefSpec(fmt.Sprintf("+%s:refs/expsync/commits/%s", commit, commit))
	px, done := sshProxy(ctx, s.repo.URL)
	defer done()
	err = remote.FetchContext(ctx, &git.FetchOptions{RemoteName: remoteName, RefSpecs: []config.RefSpec{spec},
		Depth: 1, Tags: git.NoTags, Auth: auth, CABundle: s.repo.Auth.caBundle(), Force: true, ProxyOptions: px})
	if err != nil && !errors.Is(err, git.NoErrAlreadyUpToDate) {
		return err
	}
	// The ref only served the fetch; the commit stays in the cache.
	_ = st.RemoveReference(plumbing.ReferenceName("refs/expsync/commits/" + commit.String()))
	return nil
}
