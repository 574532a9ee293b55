package reconcile

import (
	"errors"
	"fmt"
	"path"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

type folderState int

const (
	folderAbsent folderState = iota
	// folderDone: the envelope verifies with a trusted key, names this run
	// as its invocation, and covers the folder's run.json and metrics.json.
	folderDone
	// folderUntrusted: files are there but do not prove the run happened
	// (forged, copied from another run, edited after signing).
	folderUntrusted
	// folderRetry: a genuine failure recorded under different scheduling
	// fields (timeout, retries, resources): the run is tried again.
	folderRetry
)

// folderState decides whether the run folder dir in the snapshot proves
// that run is done. Anyone can push files; only a trusted key can sign
// them, so nothing but a verified envelope counts.
// present lists the run folders of the snapshot's experiment folder
// (nil when it has none); one listing instead of a lookup per run.
func (r *Reconciler) folderState(snap tree.Reader, present map[string]bool, dir string, run render.Run) (folderState, results.Run, error) {
	if !present[path.Base(dir)] {
		return folderAbsent, results.Run{}, nil
	}
	rec, metrics, err := r.verifyFolderOnce(snap, dir, run.ID, run.Experiment)
	if errors.Is(err, ErrSigningKey) {
		return folderAbsent, results.Run{}, err // no key to check it with: stop
	}
	if err != nil {
		return folderUntrusted, results.Run{}, nil
	}
	known := results.Run{Record: rec}
	known.Metrics, known.MetricText, _ = results.ParseMetrics(metrics)
	if rec.Status != contract.Succeeded && rec.Scheduling != "" && rec.Scheduling != run.Contract.SchedulingDigest() {
		return folderRetry, known, nil
	}
	return folderDone, known, nil
}

// runFolderNames lists the folders of dir in the snapshot.
func runFolderNames(snap tree.Reader, dir string) (map[string]bool, error) {
	entries, err := snap.ReadDir(dir)
	if errors.Is(err, tree.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", dir, err)
	}
	out := make(map[string]bool, len(entries))
	for _, e := range entries {
		if e.IsDir() {
			out[e.Name] = true
		}
	}
	return out, nil
}

// verifyFolder checks with attest's library check (the one `expsync
// verify` runs) that the run folder dir of a snapshot is the signed result
// of run runID of experiment: signature by a trusted key first, then the
// invocation ID, every subject in the folder, no unattested file, the
// identity hashing to the run ID and naming this experiment. It returns the
// verified run.json record and metrics.json.
func verifyFolder(snap tree.Reader, dir, runID, experiment string, trusted attest.Verifiers) (*results.Record, []byte, error) {
	// A run is done by its own attestation: statements about it in its
	// reproductions/ (listed and verified for the README) change nothing.
	opts := attest.FolderOptions{Keys: trusted, RunID: runID, Experiment: experiment, SkipReproductions: true}
	if rep, err := attest.VerifyTreeFolder(snap, dir, opts); err != nil {
		return nil, nil, firstFailure(rep, err)
	}
	// Both files are subjects the check above hashed (a folder without them
	// is no result): what is read now is what was signed.
	runJSON, err := snap.ReadFile(path.Join(dir, results.RunFile), contract.ReadRecordBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	metrics, err := snap.ReadFile(path.Join(dir, results.MetricsFile), contract.ReadMetricsBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	rec, err := results.ParseRecord(runJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	if rec.RunID != runID || rec.Experiment != experiment {
		return nil, nil, fmt.Errorf("%s: run.json records run %s of experiment %q", dir, rec.RunID, rec.Experiment)
	}
	return rec, metrics, nil
}

// firstFailure names the first failed check of a report: what a README
// shows of an unverified folder, in one line.
func firstFailure(rep *attest.Report, err error) error {
	if rep == nil || len(rep.Failures()) == 0 {
		return err
	}
	c := rep.Failures()[0]
	return fmt.Errorf("%s: %s: %w", c.Name, c.Detail, attest.ErrNotVerified)
}

// summaryCheck is results.MergeOptions.Verify: a folder of experiment in the
// summaries must verify as the run its folder names.
func (r *Reconciler) summaryCheck(snap tree.Reader, dir, experiment string) error {
	_, _, err := r.verifyFolderOnce(snap, dir, path.Base(dir), experiment)
	return err
}
