package reconcile

import (
	"path"
	"sync"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/tree"
)

// ListReproductions verifies the reproduction statements of the run folder
// runDir of a snapshot against the trusted keys, for an experiment's
// README: each statement that verifies with its verdict, the others with
// why they do not count.
func ListReproductions(snap tree.Reader, runDir string, trusted attest.Verifiers) []results.Reproduction {
	files, err := attest.VerifyTreeReproductions(snap, runDir, attest.FolderOptions{Keys: trusted})
	if err != nil {
		return nil
	}
	out := make([]results.Reproduction, 0, len(files))
	for _, f := range files {
		rp := results.Reproduction{File: path.Base(f.Name), Verdict: f.Verdict, BuilderID: f.BuilderID, FinishedOn: f.FinishedOn}
		if !f.OK {
			rp.Unverified = f.Reason
		}
		out = append(out, rp)
	}
	return out
}

// reproductions is results.MergeOptions.Reproductions: the statements of
// a run folder, verified with this reconciler's trusted keys. Summaries are
// refreshed at every reconcile: a folder whose Git tree ID was listed
// before (the tree names every statement's bytes) is not verified again.
func (r *Reconciler) reproductions(snap tree.Reader, runDir string) []results.Reproduction {
	_, trusted, err := r.keys()
	if err != nil {
		return nil
	}
	e, err := snap.Stat(runDir)
	if err != nil || e.Hash == "" {
		return ListReproductions(snap, runDir, trusted)
	}
	key := statementKey{tree: e.Hash, dir: runDir}
	if list, ok := r.statements.get(key); ok {
		return list
	}
	list := ListReproductions(snap, runDir, trusted)
	r.statements.put(key, list)
	return list
}

// statementLists caches ListReproductions by run folder tree ID (the
// trusted keys of a Reconciler are fixed); bounded like verifiedTrees.
type statementLists struct {
	mu sync.Mutex
	m  map[statementKey][]results.Reproduction
}

type statementKey struct {
	tree tree.Hash
	dir  string
}

func (s *statementLists) get(k statementKey) ([]results.Reproduction, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	list, ok := s.m[k]
	return list, ok
}

func (s *statementLists) put(k statementKey, list []results.Reproduction) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.m == nil || len(s.m) >= maxVerifiedTrees {
		s.m = map[statementKey][]results.Reproduction{}
	}
	s.m[k] = list
}
