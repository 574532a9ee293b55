package gitsource

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/expsync/expsync/tree"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// CommitRequest is one set of files to commit to a branch.
type CommitRequest struct {
	// Branch receives the commit (short name, e.g. "main" or "results/pr-7").
	Branch string
	// Files maps slash-separated paths to contents; a nil content deletes
	// the path (a file or a whole folder). Files are written with mode 0644.
	Files map[string][]byte
	// Base is the commit the caller computed Files against. When the
	// branch head is not Base ("" counts as unknown, so always) — at the
	// first attempt or after losing a push race — the MergeFunc rebuilds
	// Files on the head; a nil MergeFunc writes Files as they are.
	Base string
	// Create lets CommitBack create Branch when it is absent: the caller
	// expects a new branch (a results branch not pushed yet). The push
	// then succeeds only while the branch is still absent. Without Create
	// the branch must exist, and an absent one — deleted since the caller
	// read it, such as a merged pull request's branch — fails with
	// ErrBranchDeleted; it is never re-created. A caller committing in
	// batches clears Create once a result says BranchExists; CommitBack
	// does the same between its own attempts.
	Create bool
	// StartFrom is the ref a created Branch starts from (for example the
	// pull request head whose results it holds); "" creates the branch as
	// a root commit holding only Files.
	StartFrom string
	// Contains, when set, is a commit that must be in the history the
	// commit lands on: the commit the results came from. The head of
	// ContainsRef (default: Branch itself, checked on the very head the
	// push builds on, under the push's lease) must be it or descend from
	// it; otherwise — the branch was force-pushed during the runs —
	// CommitBack fails with ErrNotContained and pushes nothing, so no
	// branch shows results its own experiment files never planned.
	Contains string
	// ContainsRef is the ref whose head must contain Contains when it is
	// not Branch: the pull request whose results go to a results branch.
	ContainsRef string
	// Message, Author and Committer of the commit (Committer defaults to
	// Author; When defaults to now). A Message containing "{{" is a
	// text/template over MessageData.
	Message           string
	Author, Committer Signature
	// Signer signs the commit (PGPSigner or SSHSigner); nil leaves it unsigned.
	Signer Signer
	Retry  RetryPolicy
}

// RetryPolicy bounds the retries after a lost push race.
type RetryPolicy struct {
	MaxAttempts int           // default 8
	BaseDelay   time.Duration // default 250ms; doubles each attempt
	MaxDelay    time.Duration // default 5s
}

func (r RetryPolicy) withDefaults() RetryPolicy {
	if r.MaxAttempts <= 0 {
		r.MaxAttempts = 8
	}
	if r.BaseDelay <= 0 {
		r.BaseDelay = 250 * time.Millisecond
	}
	if r.MaxDelay <= 0 {
		r.MaxDelay = 5 * time.Second
	}
	return r
}

// delay is exponential backoff with full jitter for attempt (1-based).
func (r RetryPolicy) delay(attempt int) time.Duration {
	d := r.BaseDelay << min(attempt-1, 16)
	if d > r.MaxDelay || d <= 0 {
		d = r.MaxDelay
	}
	return d/2 + rand.N(d/2+1)
}

// MergeFunc rebuilds a change on a new head: base is the head's tree, ours
// the files the caller wants to write. It returns the files to write on
// top of base (nil content deletes). It must be deterministic and must not
// keep base after returning.
type MergeFunc func(base tree.Reader, ours map[string][]byte) (map[string][]byte, error)

// CommitResult reports a CommitBack.
type CommitResult struct {
	Commit          string // the pushed commit, or the head when there was nothing to commit
	Parent          string // the head the commit was built on ("" for a new root)
	Pushed          bool
	NothingToCommit bool
	// BranchExists says the branch is on the server after the call: it
	// was there, or the push created it. From then on its absence means
	// it was deleted, and later commits should not set Create.
	BranchExists bool
	Attempts     int
}

var errLostRace = errors.New("the branch moved while pushing")

// CommitBack writes req.Files as one commit on req.Branch and pushes it.
// If the push loses a race with another writer, it fetches the new head,
// rebuilds the change through merge (nil merge: our files overwrite theirs
// path by path) and retries with backoff, up to req.Retry.MaxAttempts. A
// change that leaves the head's tree as it is is a success with
// NothingToCommit set and nothing pushed.
func (s *Source) CommitBack(ctx context.Context, req CommitRequest, merge MergeFunc) (CommitResult, error) {
	op := "commit to " + req.Branch
	if err := plumbing.NewBranchReferenceName(req.Branch).Validate(); err != nil || req.Branch == "" {
		return CommitResult{}, s.newError(op, nil, "invalid branch name %q", req.Branch)
	}
	if req.Message == "" || req.Author.Name == "" || req.Author.Email == "" {
		return CommitResult{}, s.newError(op, nil, "a commit needs a message and an author name and email")
	}
	edits, err := buildEdits(req.Files)
	if err != nil {
		return CommitResult{}, s.newError(op, nil, "%v", err)
	}
	if _, err := renderMessage(req, ""); err != nil {
		return CommitResult{}, s.newError(op, nil, "%v", err)
	}
	retry := req.Retry.withDefaults()
	var res CommitResult
	for attempt := 1; attempt <= retry.MaxAttempts; attempt++ {
		res, err = s.commitOnce(ctx, req, edits, merge, attempt)
		res.Attempts = attempt
		// Once the branch has been seen, its disappearance at a later
		// attempt is a deletion, not a branch to create.
		req.Create = req.Create && !res.BranchExists
		if !errors.Is(err, errLostRace) {
			if err != nil {
				return res, s.wrap(op, err)
			}
			return res, nil
		}
		if attempt == retry.MaxAttempts {
			break
		}
		select {
		case <-ctx.Done():
			return res, s.wrap(op, ctx.Err())
		case <-time.After(retry.delay(attempt)):
		}
	}
	return res, s.newError(op, ErrRetriesExhausted, "%d attempts", retry.MaxAttempts)
}

// commitOnce is one attempt: find the head, rebuild if needed, commit, push.
func (s *Source) commitOnce(ctx context.Context, req CommitRequest, edits *editNode, merge MergeFunc, attempt int) (CommitResult, error) {
	ctx, cancel := s.limits.withTimeout(ctx)
	defer cancel()
	unlock, err := s.lockCache(ctx)
	if err != nil {
		return CommitResult{}, err
	}
	defer unlock()
	branchRef := "refs/heads/" + req.Branch
	// Fetch the branch as it is now; its head is what we build on. The
	// push later requires the server's branch to still be there.
	branchHead, err := s.fetchHead(ctx, branchRef)
	if err != nil {
		return CommitResult{}, err
	}
	if branchHead.IsZero() && !req.Create {
		return CommitResult{}, s.newError("commit to "+req.Branch, ErrBranchDeleted,
			"nothing was pushed")
	}
	head := branchHead
	var startHead plumbing.Hash
	if head.IsZero() && req.StartFrom != "" {
		if head, err = s.fetchHead(ctx, req.StartFrom); err != nil {
			return CommitResult{}, err
		}
		if head.IsZero() {
			return CommitResult{}, fmt.Errorf("%w: %s (to start branch %s from)", ErrRefNotFound, req.StartFrom, req.Branch)
		}
		startHead = head
	}
	if err := s.checkContains(ctx, req, branchRef, head, startHead); err != nil {
		return CommitResult{BranchExists: !branchHead.IsZero()}, err
	}
	fsStorage, err := s.openStorage()
	if err != nil {
		return CommitResult{}, err
	}
	defer fsStorage.Close()
	st := newOverlay(fsStorage)

	var baseTree plumbing.Hash
	if !head.IsZero() {
		c, err := object.GetCommit(st, head)
		if err != nil {
			return CommitResult{}, err
		}
		baseTree = c.TreeHash
	}
	if merge != nil && !head.IsZero() && (attempt > 1 || head.String() != req.Base) {
		if edits, err = s.rebuild(st, head, req.Files, merge); err != nil {
			return CommitResult{}, err
		}
	}
	newTree, err := applyEdits(st, baseTree, edits)
	if err != nil {
		return CommitResult{}, err
	}
	res := CommitResult{Parent: zeroToEmpty(head), BranchExists: !branchHead.IsZero()}
	if !head.IsZero() && newTree == baseTree {
		res.Commit, res.NothingToCommit = head.String(), true
		return res, nil
	}
	msg, err := renderMessage(req, zeroToEmpty(head))
	if err != nil {
		return res, err
	}
	req.Message = msg
	commit, err := writeCommit(st, req, newTree, head)
	if err != nil {
		return res, err
	}
	res.Commit = commit.String()
	if err := s.push(ctx, st, req.Branch, branchHead, commit); err != nil {
		return res, err
	}
	res.Pushed, res.BranchExists = true, true
	return res, nil
}

// checkContains applies CommitRequest.Contains: the head of ContainsRef
// (or head, the head of Branch the commit is built on) must contain it.
// startHead is ContainsRef's head when it was just fetched to start the
// branch from.
func (s *Source) checkContains(ctx context.Context, req CommitRequest, branchRef string, head, startHead plumbing.Hash) error {
	if req.Contains == "" {
		return nil
	}
	want := plumbing.NewHash(req.Contains)
	ref, h := branchRef, head
	if req.ContainsRef != "" && req.ContainsRef != branchRef {
		ref, h = req.ContainsRef, startHead
		if h.IsZero() || req.ContainsRef != req.StartFrom {
			var err error
			if h, err = s.fetchHead(ctx, req.ContainsRef); err != nil {
				return err
			}
		}
	}
	if h.IsZero() {
		return s.newError("commit to "+req.Branch, ErrNotContained, "%s is gone", ref)
	}
	ok, err := s.headContains(h, want)
	if err != nil {
		return err
	}
	if !ok {
		return s.newError("commit to "+req.Branch, ErrNotContained, "%s is at %s, which does not contain %s", ref, h, want)
	}
	return nil
}

func zeroToEmpty(h plumbing.Hash) string {
	if h.IsZero() {
		return ""
	}
	return h.String()
}

// fetchHead fetches ref's current head into the cache and returns it
// (ZeroHash when the ref or the whole repository is absent). The caller
// holds the cache lock.
func (s *Source) fetchHead(ctx context.Context, ref string) (plumbing.Hash, error) {
	err := s.ensureCommit(ctx, ref, plumbing.ZeroHash, 1)
	if errors.Is(err, ErrRefNotFound) || errors.Is(err, ErrEmptyRepository) {
		return plumbing.ZeroHash, nil
	}
	if err != nil {
		return plumbing.ZeroHash, err
	}
	st, err := s.openStorage()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	defer st.Close()
	r, err := st.Reference(cacheRef(ref))
	if err != nil {
		return plumbing.ZeroHash, err
	}
	return r.Hash(), nil
}

// remoteHead lists the server's refs and returns ref's head (ZeroHash if absent).
func (s *Source) remoteHead(ctx context.Context, ref string) (plumbing.Hash, error) {
	refs, err := s.listRefs(ctx)
	if err != nil {
		if errors.Is(err, transport.ErrEmptyRemoteRepository) {
			return plumbing.ZeroHash, nil
		}
		return plumbing.ZeroHash, err
	}
	for _, r := range refs {
		if r.Name().String() == ref && r.Type() == plumbing.HashReference {
			return r.Hash(), nil
		}
	}
	return plumbing.ZeroHash, nil
}

// rebuild runs merge over the head's tree and returns the resulting edits.
func (s *Source) rebuild(st *overlay, head plumbing.Hash, ours map[string][]byte, merge MergeFunc) (*editNode, error) {
	snap, err := openSnapshot(st.Storage, head, s.limits.MaxFileBytes)
	if err != nil {
		return nil, err
	}
	files, err := merge(snap, ours)
	snap.st = nil // st belongs to the caller
	if err != nil {
		return nil, fmt.Errorf("merge onto %s: %w", head, err)
	}
	return buildEdits(files)
}

func writeCommit(st *overlay, req CommitRequest, treeHash, parent plumbing.Hash) (plumbing.Hash, error) {
	now := time.Now()
	sig := func(s Signature) object.Signature {
		if s.When.IsZero() {
			s.When = now
		}
		return object.Signature{Name: s.Name, Email: s.Email, When: s.When}
	}
	committer := req.Committer
	if committer.Name == "" {
		committer = req.Author
	}
	c := &object.Commit{Author: sig(req.Author), Committer: sig(committer), Message: req.Message, TreeHash: treeHash}
	if !parent.IsZero() {
		c.ParentHashes = []plumbing.Hash{parent}
	}
	if req.Signer != nil {
		payload := &plumbing.MemoryObject{}
		if err := c.EncodeWithoutSignature(payload); err != nil {
			return plumbing.ZeroHash, err
		}
		r, err := payload.Reader()
		if err != nil {
			return plumbing.ZeroHash, err
		}
		sigBytes, err := req.Signer.Sign(r)
		r.Close()
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("sign commit: %w", err)
		}
		c.PGPSignature = string(sigBytes)
	}
	obj := st.NewEncodedObject()
	if err := c.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}
