package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/results"
	"github.com/expsync/expsync/runner"
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

// maxFolderFileBytes bounds what is read of a run folder to decide it.
const maxFolderFileBytes = 4 << 20

// folderState decides whether the run folder dir in the snapshot proves
// that run is done. Anyone can push files; only a trusted key can sign
// them, so nothing but a verified envelope counts.
// present lists the run folders of the snapshot's experiment folder
// (nil when it has none); one listing instead of a lookup per run.
func (r *Reconciler) folderState(snap tree.Reader, present map[string]bool, dir string, run render.Run) (folderState, results.Run, error) {
	if !present[path.Base(dir)] {
		return folderAbsent, results.Run{}, nil
	}
	rec, metrics, err := verifyFolder(snap, dir, run.ID, r.Trusted)
	if err != nil {
		return folderUntrusted, results.Run{}, nil
	}
	known := results.Run{Record: rec}
	known.Metrics, known.MetricText, _ = results.ParseMetrics(metrics)
	if rec.Status != results.Succeeded && rec.Scheduling != "" && rec.Scheduling != runner.SchedulingDigest(run.Contract) {
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

// VerifyFolder checks that the results folder dir of a snapshot is the
// signed result of run runID: the envelope's signature by a trusted key
// first, then that its invocation ID is runID, that run.json and
// metrics.json are the files it covers, and that run.json names runID. It
// returns the verified record.
//
// It is the planner's "is this run done?" check; attest's library check
// (expsync verify) does the same and more for reviewers.
func VerifyFolder(snap tree.Reader, dir, runID string, trusted attest.Verifiers) (*results.Record, error) {
	rec, _, err := verifyFolder(snap, dir, runID, trusted)
	return rec, err
}

// verifyFolder is VerifyFolder that also returns metrics.json.
func verifyFolder(snap tree.Reader, dir, runID string, trusted attest.Verifiers) (*results.Record, []byte, error) {
	env, err := snap.ReadFile(path.Join(dir, results.EnvelopeFile), maxFolderFileBytes)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	v, err := attest.VerifyEnvelope(env, trusted, attest.VerifyOptions{})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	if v.InvocationID != runID {
		return nil, nil, fmt.Errorf("%s: the envelope attests run %s, not %s (copied from another run?)", dir, v.InvocationID, runID)
	}
	subjects := map[string]string{}
	for _, s := range v.Subjects {
		subjects[s.Name] = s.SHA256
	}
	var runJSON, metrics []byte
	for _, name := range []string{results.RunFile, results.MetricsFile} {
		data, err := snap.ReadFile(path.Join(dir, name), maxFolderFileBytes)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", dir, err)
		}
		want, ok := subjects[name]
		if !ok {
			return nil, nil, fmt.Errorf("%s: the attestation does not cover %s", dir, name)
		}
		sum := sha256.Sum256(data)
		if got := hex.EncodeToString(sum[:]); got != want {
			return nil, nil, fmt.Errorf("%s: %s has sha256 %s, the attestation says %s (edited after signing?)", dir, name, got, want)
		}
		if name == results.RunFile {
			runJSON = data
		} else {
			metrics = data
		}
	}
	rec, err := results.ParseRecord(runJSON)
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", dir, err)
	}
	if rec.RunID != runID {
		return nil, nil, fmt.Errorf("%s: run.json records run %s", dir, rec.RunID)
	}
	return rec, metrics, nil
}
