package gitsource

import (
	"errors"
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// ErrNotContained is returned by CommitBack when the head that would take
// the commit does not contain CommitRequest.Contains: the branch was
// force-pushed to a history without the commit the results came from, and
// nothing is pushed. Results land only on history that ran them.
var ErrNotContained = errors.New("the branch no longer contains the commit the results came from (force-pushed?); nothing was pushed")

// maxAncestryWalk bounds the commits read to decide that a head contains a
// commit; beyond it the answer is "not shown", which keeps results off the
// branch (they stay in the caller's run cache), never on a wrong one.
const maxAncestryWalk = 100_000

// containsCommit reports whether head is commit or descends from it, from
// the commits in the cache. unknown is set when the walk met a commit
// whose parents the cache lacks (a shallow fetch) before it could decide.
func containsCommit(st *filesystem.Storage, head, commit plumbing.Hash) (found, unknown bool, err error) {
	if head == commit {
		return true, false, nil
	}
	shallow := map[plumbing.Hash]bool{}
	if list, err := st.Shallow(); err == nil {
		for _, h := range list {
			shallow[h] = true
		}
	}
	seen := map[plumbing.Hash]bool{head: true}
	queue := []plumbing.Hash{head}
	for len(queue) > 0 {
		if len(seen) > maxAncestryWalk {
			return false, true, nil
		}
		h := queue[0]
		queue = queue[1:]
		c, err := object.GetCommit(st, h)
		if errors.Is(err, plumbing.ErrObjectNotFound) {
			unknown = true
			continue
		}
		if err != nil {
			return false, false, fmt.Errorf("read commit %s: %w", h, err)
		}
		if shallow[h] {
			unknown = true // its parents were not fetched
			continue
		}
		for _, p := range c.ParentHashes {
			if p == commit {
				return true, false, nil
			}
			if !seen[p] {
				seen[p] = true
				queue = append(queue, p)
			}
		}
	}
	return false, unknown, nil
}

// headContains decides whether head, as fetched into the cache, contains
// commit. A reconcile snapshots the commit that ran before it commits
// back, and the head is fetched on top of it, so the history between them
// is in the cache. When it is not — the cache was dropped meanwhile and
// holds the head alone (go-git cannot deepen a ref whose head it has) —
// the answer is no: the results stay in the run cache, and the next
// reconcile of the head recovers the runs it plans. Never yes without
// proof. The caller holds the cache lock.
func (s *Source) headContains(head, commit plumbing.Hash) (bool, error) {
	st, err := s.openStorage()
	if err != nil {
		return false, err
	}
	defer st.Close()
	found, _, err := containsCommit(st, head, commit)
	return found, err
}
