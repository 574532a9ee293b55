package reconcile

import (
	"path"

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
// a run folder, verified with this reconciler's trusted keys.
func (r *Reconciler) reproductions(snap tree.Reader, runDir string) []results.Reproduction {
	_, trusted, err := r.keys()
	if err != nil {
		return nil
	}
	return ListReproductions(snap, runDir, trusted)
}
