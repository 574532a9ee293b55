package gitsource

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// RefChange is one watched ref that appeared, moved or disappeared since
// the previous Poll.
type RefChange struct {
	Ref string // full ref name, e.g. refs/heads/main
	Old string // last observed commit ("" when the ref is new)
	New string // current commit ("" when the ref was deleted)
	// Trusted is the ref pattern's trust.
	Trusted bool
	// Runnable says whether the new commit may run: trusted refs without
	// required verification always; others only when every new commit is
	// signed by an allowed key.
	Runnable bool
	// Reason explains Runnable (which commits were verified and by whom,
	// or why the commit was refused).
	Reason string
	// ResultsBranch is where results of this ref's commits go ("" for a
	// ref that is neither a branch nor has a results branch).
	ResultsBranch string
}

// Deleted reports whether the ref disappeared.
func (c RefChange) Deleted() bool { return c.New == "" }

// Poll lists the server's refs once and reports the watched refs that
// changed since the previous Poll (or since SetObserved). An unchanged
// repository costs exactly one ref listing and no fetch. Changed refs that
// need verification are fetched into the cache and verified here, so a
// RefChange is Runnable only after its commits passed verification.
func (s *Source) Poll(ctx context.Context) ([]RefChange, error) {
	// One Poll at a time, so a change is reported once.
	s.pollMu.Lock()
	defer s.pollMu.Unlock()
	ctx, cancel := s.limits.withTimeout(ctx)
	defer cancel()
	refs, err := s.listRefs(ctx)
	if errors.Is(err, transport.ErrEmptyRemoteRepository) {
		// An empty repository is an error to report, unless refs we
		// observed have gone: then their deletion is the news.
		if len(s.Observed()) == 0 {
			return nil, s.newError("poll", ErrEmptyRepository, "")
		}
		refs, err = nil, nil
	}
	if err != nil {
		return nil, s.wrap("poll", err)
	}
	current := map[string]string{}
	peeled := map[string]string{} // annotated tag -> its commit
	for _, r := range refs {
		if r.Type() != plumbing.HashReference {
			continue
		}
		name := r.Name().String()
		if base, ok := strings.CutSuffix(name, "^{}"); ok {
			peeled[base] = r.Hash().String()
			continue
		}
		if _, ok := s.repo.PolicyFor(name); ok {
			current[name] = r.Hash().String()
		}
	}
	for name := range current {
		if c, ok := peeled[name]; ok {
			current[name] = c // report the commit, not the tag object
		}
	}
	changes := s.diffObserved(current)
	for _, i := range s.trustedFirst(changes) {
		c := &changes[i]
		p, _ := s.repo.PolicyFor(c.Ref)
		c.Trusted = p.Trusted
		c.ResultsBranch, _ = s.repo.ResultsBranchFor(c.Ref)
		switch {
		case c.Deleted():
			c.Reason = "ref deleted"
		case !s.repo.needsVerification(p):
			c.Runnable, c.Reason = true, "trusted ref"
		default:
			var retry bool
			c.Runnable, c.Reason, retry = s.verifyChange(ctx, c)
			if retry {
				continue // not observed: the next Poll verifies again
			}
		}
		s.stateMu.Lock()
		if c.Deleted() {
			delete(s.observed, c.Ref)
		} else {
			s.observed[c.Ref] = c.New
		}
		s.stateMu.Unlock()
	}
	return changes, nil
}

// trustedFirst orders the changes' indexes trusted refs first: a baseline
// or a verification a trusted ref takes in this Poll is history an
// untrusted ref's walk stops at, so an untrusted ref that sorts before it
// is not verified against an empty cache (its head alone).
func (s *Source) trustedFirst(changes []RefChange) []int {
	order := make([]int, 0, len(changes))
	for _, trusted := range []bool{true, false} {
		for i, c := range changes {
			if p, _ := s.repo.PolicyFor(c.Ref); p.Trusted == trusted {
				order = append(order, i)
			}
		}
	}
	return order
}

// diffObserved compares the listed refs with the observed ones, sorted by ref.
func (s *Source) diffObserved(current map[string]string) []RefChange {
	s.stateMu.Lock()
	defer s.stateMu.Unlock()
	var out []RefChange
	for ref, h := range current {
		if old := s.observed[ref]; old != h {
			out = append(out, RefChange{Ref: ref, Old: old, New: h})
		}
	}
	for ref, old := range s.observed {
		if _, ok := current[ref]; !ok {
			out = append(out, RefChange{Ref: ref, Old: old})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// verifyChange fetches the new commits of c and verifies each one. retry
// is true when verification could not run (network, server): the change is
// not runnable now and is verified again at the next Poll.
func (s *Source) verifyChange(ctx context.Context, c *RefChange) (runnable bool, reason string, retry bool) {
	res, err := s.VerifyRef(ctx, c.Ref, c.New)
	switch {
	case errors.Is(err, ErrUnverified):
		return false, "refused: " + err.Error(), false
	case err != nil:
		return false, "verification could not run (retried at the next poll): " + err.Error(), true
	case len(res.Checked) == 0 && len(res.From) > 0:
		return true, fmt.Sprintf("commit %s is the configured verification baseline", c.New), false
	case len(res.Checked) == 0:
		return true, fmt.Sprintf("commit %s was verified before", c.New), false
	case res.Baseline:
		return true, fmt.Sprintf("head signed by %s taken as the verification baseline (the ref has no verified history; the signature vouches for the history beneath); every later commit is verified", res.Signers[0]), false
	}
	reason = fmt.Sprintf("%d new commit(s) verified, head signed by %s", len(res.Checked), res.Signers[0])
	if len(res.From) > 0 {
		reason += ", down to the configured baseline " + strings.Join(res.From, ", ")
	}
	return true, reason, false
}

// VerifyRef fetches ref up to commit and verifies every commit not verified
// before (see verifyRange for where the walk stops). Verified commits are
// remembered on disk.
func (s *Source) VerifyRef(ctx context.Context, ref, commit string) (VerifyResult, error) {
	ctx, cancel := s.limits.withTimeout(ctx)
	defer cancel()
	op := "verify " + ref
	if s.repo.Verify == nil {
		return VerifyResult{}, s.newError(op, ErrUnverified, "verification needed but no keys are configured (set Verify on the repository)")
	}
	ks, err := s.repo.Verify.keys()
	if err != nil {
		return VerifyResult{}, s.wrap(op, err)
	}
	unlock, err := s.lockCache(ctx)
	if err != nil {
		return VerifyResult{}, s.wrap(op, err)
	}
	defer unlock()
	verified, order, err := s.loadVerified()
	if err != nil {
		return VerifyResult{}, s.wrap(op, err)
	}
	refs, err := s.loadVerifiedRefs()
	if err != nil {
		return VerifyResult{}, s.wrap(op, err)
	}
	head := plumbing.NewHash(commit)
	if verified[head] {
		return VerifyResult{}, s.wrap(op, s.recordVerifiedRef(refs, ref))
	}
	// Only a trusted ref never verified before may take its signed head as
	// a baseline (see baselineHead); an untrusted ref's every commit
	// outside accepted history is checked.
	p, _ := s.repo.PolicyFor(ref)
	mayBaseline := p.Trusted && !refs[ref]
	res, err := s.fetchAndVerify(ctx, ref, head, ks, verified, mayBaseline)
	if errors.Is(err, errUnverifiedCut) {
		// The cache holds commits fetched shallow by other operations
		// (snapshots, commit-back) or before a drop: what hides under
		// them was never checked. Fetch the ref's history afresh, once.
		if derr := s.dropCache(); derr != nil {
			return VerifyResult{}, s.wrap(op, derr)
		}
		res, err = s.fetchAndVerify(ctx, ref, head, ks, verified, mayBaseline)
		if errors.Is(err, errUnverifiedCut) {
			return res, s.newError(op, ErrUnverified,
				"%v, even after fetching the history afresh: the server sent %s shallow; check that it serves the whole history, or name a signed commit as the baseline (verify.from / --verify-from)",
				err, ref)
		}
	}
	var re *RepoError
	if errors.As(err, &re) {
		return res, err // a fetch's error, already wrapped
	}
	if err != nil {
		return res, s.newError(op, ErrUnverified, "%v", err)
	}
	if err := s.saveVerified(order, append(res.From, res.Checked...)); err != nil {
		return res, s.wrap(op, err)
	}
	if err := s.recordVerifiedRef(refs, ref); err != nil {
		return res, s.wrap(op, err)
	}
	return res, nil
}

// fetchAndVerify fetches ref up to head and verifies its new commits: the
// walk stops at verified commits and at the cached heads of trusted refs.
func (s *Source) fetchAndVerify(ctx context.Context, ref string, head plumbing.Hash, ks *keySet,
	verified map[plumbing.Hash]bool, mayBaseline bool) (VerifyResult, error) {
	op := "verify " + ref
	stop := map[plumbing.Hash]bool{}
	for h := range verified {
		stop[h] = true
	}
	depth := 1
	if !s.trustedHeads(stop) {
		// First sight with an empty cache: fetch the trusted refs' heads
		// (shallow) first, so the new ref's fetch brings exactly the
		// commits they do not have, and every one of those is checked.
		if err := s.seedTrustedHeads(ctx); err != nil {
			return VerifyResult{}, err
		}
	}
	if s.trustedHeads(stop) || len(verified) > 0 || !mayBaseline {
		// The cache has history, or commits were verified before (kept
		// across cache drops): fetch all that is new, so the walk reaches
		// them. Only a trusted ref taking its baseline (a first sight with
		// nothing to stop at) checks the head alone: checking an untrusted
		// ref's head alone would make it a baseline, and a signed head on
		// an unsigned commit would run.
		depth = 0
	}
	if err := s.ensureCommit(ctx, ref, head, depth); err != nil {
		return VerifyResult{}, err
	}
	st, err := s.openStorage()
	if err != nil {
		return VerifyResult{}, s.wrap(op, err)
	}
	defer st.Close()
	shallow, err := st.Shallow()
	if err != nil {
		return VerifyResult{}, s.wrap(op, err)
	}
	from, err := s.repo.Verify.fromCommits()
	if err != nil {
		return VerifyResult{}, err
	}
	accepted, err := acceptFrom(st, ks, from, stop)
	if err != nil {
		return VerifyResult{}, err
	}
	headAlone := depth == 1
	res, err := verifyRange(st, ks, head, acceptedHistory(st, stop), s.limits.MaxVerifyCommits, shallow, headAlone, mayBaseline)
	res.From = accepted
	return res, err
}

// trustedHeads adds the cached heads of trusted refs that need no
// verification to stop, and reports whether the cache holds any ref.
func (s *Source) trustedHeads(stop map[plumbing.Hash]bool) (found bool) {
	st, err := s.openStorage()
	if err != nil {
		return false
	}
	defer st.Close()
	iter, err := st.IterReferences()
	if err != nil {
		return false
	}
	_ = iter.ForEach(func(r *plumbing.Reference) error {
		if r.Type() != plumbing.HashReference || !isCacheRef(r.Name()) {
			return nil
		}
		found = true
		if p, ok := s.repo.PolicyFor(remoteRefOf(r.Name())); ok && !s.repo.needsVerification(p) {
			stop[peel(st, r.Hash())] = true
		}
		return nil
	})
	return found
}

// maxSeededRefs bounds the trusted refs fetched to seed a verification.
const maxSeededRefs = 4

// seedTrustedHeads fetches, shallow, the heads of up to maxSeededRefs
// server refs watched as trusted without verification.
func (s *Source) seedTrustedHeads(ctx context.Context) error {
	refs, err := s.listRefs(ctx)
	if err != nil {
		return s.wrap("list refs", err)
	}
	seeded := 0
	for _, r := range refs {
		name := r.Name().String()
		if r.Type() != plumbing.HashReference || strings.HasSuffix(name, "^{}") {
			continue
		}
		if p, ok := s.repo.PolicyFor(name); !ok || s.repo.needsVerification(p) {
			continue
		}
		if err := s.ensureCommit(ctx, name, plumbing.ZeroHash, 1); err != nil {
			return err
		}
		if seeded++; seeded == maxSeededRefs {
			break
		}
	}
	return nil
}

func isCacheRef(n plumbing.ReferenceName) bool {
	return len(n) > len("refs/expsync/") && n[:len("refs/expsync/")] == "refs/expsync/"
}

// remoteRefOf maps a cache ref back to the server's ref name.
func remoteRefOf(n plumbing.ReferenceName) string {
	return "refs/" + string(n[len("refs/expsync/"):])
}
