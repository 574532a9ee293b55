package runner

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
)

// ResultFile is the run cache file holding a run's Result.
const ResultFile = "result.json"

var errCorrupt = errors.New("corrupt")

// LoadResult reads a run's result from the run cache; store.ErrNotFound
// when there is none.
func LoadResult(ctx context.Context, st store.Store, runID string) (*contract.Result, error) {
	data, err := st.RunFile(ctx, runID, ResultFile)
	if err != nil {
		return nil, err
	}
	var r contract.Result
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("run cache %s: %w %s: %v", runID, errCorrupt, ResultFile, err)
	}
	if r.RunID != runID {
		return nil, fmt.Errorf("run cache %s: %w %s: it records run %s", runID, errCorrupt, ResultFile, r.RunID)
	}
	r.Cached = true
	return &r, nil
}

// Cached returns the cached result that stands for c, if any: a success
// always does; a failure only while the contract's limits and retries are
// unchanged (changing them retries a failed run, never a successful one).
func Cached(ctx context.Context, st store.Store, c contract.Contract) (*contract.Result, bool, error) {
	r, err := LoadResult(ctx, st, c.RunID)
	if errors.Is(err, store.ErrNotFound) || errors.Is(err, errCorrupt) {
		// A result cut short (a power loss) stands for nothing: run again.
		return nil, false, nil
	}
	if err != nil {
		return nil, false, err
	}
	if missing, err := missingBlob(ctx, st, r); err != nil {
		return nil, false, err
	} else if missing != "" {
		// A result whose log or outputs are gone (dropped after a run wrote
		// to a shared object, a store pruned by hand) cannot be committed:
		// run again rather than fail on it forever.
		return nil, false, nil
	}
	switch {
	case r.Status == contract.Succeeded:
		return r, true, nil
	case r.Status.Cacheable() && r.SchedulingDigest == c.SchedulingDigest():
		return r, true, nil
	}
	return nil, false, nil
}

// StoreResult records a result in the run cache (cacheable statuses only).
func StoreResult(ctx context.Context, st store.Store, r *contract.Result) error {
	if !r.Status.Cacheable() {
		return nil
	}
	data, err := contract.MarshalResult(r)
	if err != nil {
		return err
	}
	return st.PutRunFile(ctx, r.RunID, ResultFile, data)
}

// RunCached runs c unless the run cache has a result standing for it. It
// holds the store's per-run lock while it runs, and re-checks the cache
// after taking it, so concurrent callers (other goroutines or processes on
// the same store) execute a run once.
func RunCached(ctx context.Context, c contract.Contract, opts Options) (*contract.Result, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	st, err := openStore(c, opts)
	if err != nil {
		return nil, err
	}
	opts.Store = st
	if r, ok, err := Cached(ctx, st, c); err != nil || ok {
		return r, err
	}
	unlock, err := st.LockRun(ctx, c.RunID)
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled while another process ran it: not a result.
			now := time.Now().UTC()
			return &contract.Result{RunID: c.RunID, Status: contract.Cancelled, ExitCode: -1, StartedAt: now, FinishedAt: now,
				SchedulingDigest: c.SchedulingDigest(), Error: "cancelled while waiting for the run's lock"}, nil
		}
		return nil, err
	}
	defer unlock()
	if r, ok, err := Cached(ctx, st, c); err != nil || ok {
		return r, err
	}
	r, err := Run(ctx, c, opts)
	if err != nil {
		return nil, err
	}
	if err := StoreResult(ctx, st, r); err != nil {
		return r, fmt.Errorf("run %s finished (%s) but its result could not be cached: %w", c.RunID, r.Status, err)
	}
	return r, nil
}

// missingBlob returns the digest of the first blob r refers to that the
// store lacks ("" when it has them all).
func missingBlob(ctx context.Context, st store.Store, r *contract.Result) (string, error) {
	blobs := make([]string, 0, 2+len(r.Outputs))
	if r.LogSHA256 != "" {
		blobs = append(blobs, r.LogSHA256)
	}
	if r.MetricsSHA256 != "" {
		blobs = append(blobs, r.MetricsSHA256)
	}
	for _, o := range r.Outputs {
		blobs = append(blobs, o.SHA256)
	}
	for _, sha := range blobs {
		if !store.ValidSHA256(sha) {
			return sha, nil
		}
		ok, err := st.Has(ctx, sha)
		if err != nil {
			return "", fmt.Errorf("run cache %s: %w", r.RunID, err)
		}
		if !ok {
			return sha, nil
		}
	}
	return "", nil
}
