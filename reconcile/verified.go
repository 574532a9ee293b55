package reconcile

import (
	"path"
	"sync"

	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/tree"
)

// verifiedTrees remembers the run folders that verified, by the folder's
// Git tree ID: a tree ID names the folder's every file name, mode and
// content, so a folder with a tree ID that verified once at the same path
// (run ID), for the same experiment and against the same trusted keys (a
// Reconciler's are fixed) verifies again. Summaries re-read every folder
// of an experiment at each batch, and serve re-plans at each poll: without
// this, a long sweep re-verifies its whole branch at every commit.
// Failures are not remembered (they are rare and must say why each time).
type verifiedTrees struct {
	mu sync.Mutex
	m  map[verifiedKey]verifiedFolder
}

type verifiedKey struct {
	tree            tree.Hash
	dir, experiment string
}

type verifiedFolder struct {
	rec     results.Record
	metrics []byte
}

// maxVerifiedTrees bounds the memory of a long-running serve (about 1 KiB
// each); when full the cache starts over.
const maxVerifiedTrees = 1 << 16

func (v *verifiedTrees) get(k verifiedKey) (*results.Record, []byte, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	f, ok := v.m[k]
	if !ok {
		return nil, nil, false
	}
	rec := f.rec // a copy: callers own what they get
	return &rec, f.metrics, true
}

func (v *verifiedTrees) put(k verifiedKey, rec *results.Record, metrics []byte) {
	v.mu.Lock()
	defer v.mu.Unlock()
	if v.m == nil || len(v.m) >= maxVerifiedTrees {
		v.m = map[verifiedKey]verifiedFolder{}
	}
	v.m[k] = verifiedFolder{rec: *rec, metrics: metrics}
}

// verifyFolderOnce is verifyFolder, skipped for a folder whose tree ID
// verified before. Folders without a tree ID (an overlay's pending
// changes) are always verified.
func (r *Reconciler) verifyFolderOnce(snap tree.Reader, dir, runID, experiment string) (*results.Record, []byte, error) {
	var key verifiedKey
	if e, err := snap.Stat(dir); err == nil && e.IsDir() && e.Hash != "" && path.Base(dir) == runID {
		key = verifiedKey{tree: e.Hash, dir: dir, experiment: experiment}
		if rec, metrics, ok := r.verified.get(key); ok {
			return rec, metrics, nil
		}
	}
	_, trusted, err := r.keys()
	if err != nil {
		return nil, nil, err
	}
	rec, metrics, err := verifyFolder(snap, dir, runID, experiment, trusted)
	if err == nil && key.tree != "" {
		r.verified.put(key, rec, metrics)
	}
	return rec, metrics, err
}
