package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// Executor runs one planned run to its result, waiting for capacity as
// needed; render.Contract(run) is what the runner executes. It is
// idempotent by run ID: a restarted process that executes a run again
// adopts what a predecessor started rather than starting it twice. A
// cancelled ctx ends the wait (the result then has status Cancelled); an
// executor whose runs outlive the process (Kubernetes Jobs) stops the run
// itself only when context.Cause(ctx) is ErrRunObsolete.
type Executor interface {
	Execute(ctx context.Context, run render.Run) (*contract.Result, error)
}

// recovered is a run whose result the run cache holds.
type recovered struct {
	run render.Run
	res *contract.Result
}

// recoverRuns attests and queues the cached results: a force-push that
// dropped a results commit, or another branch that ran the same run, costs
// a commit, never a rerun. The record and statement name this target (the
// run ID, and so everything that determines the result, is the same), so
// `expsync verify --repo` finds their trees and blobs on this branch.
// Runs whose cached result names a corrupt store object (dropped by
// readObject) are returned to be executed again.
func (r *Reconciler) recoverRuns(ctx context.Context, t Target, layout results.Layout, list []recovered, b *batcher, rep *Report) ([]render.Run, error) {
	var errs []error
	var rerun []render.Run
	for i, rc := range list {
		folder, err := r.buildFolder(ctx, t, layout, rc.run, rc.res)
		if errors.Is(err, ErrSigningKey) {
			rep.Cancelled += len(list) - i
			return nil, err // nothing can be signed
		}
		if errors.Is(err, errCorruptObject) {
			rerun = append(rerun, rc.run)
			continue
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("recover run %s of %s: %w", contract.ShortID(rc.run.ID), rc.run.Experiment, err))
			rep.Cancelled++
			continue
		}
		b.add(folder.Dir, folder.Record, folder.RelFiles())
		rep.Recovered++
		if folder.Record.Status == contract.Succeeded {
			rep.Succeeded++
		} else {
			rep.Failed++
		}
		r.emit(t, Event{Kind: EventRunFinished, Commit: t.Commit, RunID: rc.run.ID, Experiment: rc.run.Experiment,
			Status: string(folder.Record.Status), Recovered: true, Duration: folder.Record.Duration()})
	}
	return rerun, errors.Join(errs...)
}

// execute prepares the store (context trees and repository inputs), runs
// every run through the executor and queues each signed folder as it
// finishes. Runs that were cancelled or hit an infrastructure error are not
// committed; the next reconcile tries them again.
func (r *Reconciler) execute(ctx context.Context, t Target, layout results.Layout, runs []render.Run, b *batcher, rep *Report) error {
	prep := &preparer{st: r.Store, snap: t.Tree, trees: map[string]error{}}
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		errs   []error
		keyErr error
	)
	// A signing key that cannot be loaded stops every run: nothing could
	// be signed. Those that finished stay in the run cache.
	runsCtx, stopRuns := context.WithCancel(ctx)
	defer stopRuns()
	for _, run := range runs {
		runCtx, cancel := context.WithCancelCause(runsCtx)
		key := TargetKey(t.Repository, t.Ref)
		r.track(key, run.ID, cancel)
		wg.Add(1)
		go func(run render.Run) {
			defer wg.Done()
			defer cancel(nil)
			defer r.untrack(key, run.ID)
			res, err := r.runOne(runCtx, prep, run)
			if err == nil && res.Status.Cacheable() {
				var folder *results.Folder
				folder, err = r.buildFolder(ctx, t, layout, run, res)
				if err == nil {
					b.add(folder.Dir, folder.Record, folder.RelFiles())
				}
			}
			mu.Lock()
			defer mu.Unlock()
			ev := Event{Kind: EventRunFinished, Commit: t.Commit, RunID: run.ID, Experiment: run.Experiment}
			switch {
			case errors.Is(err, ErrSigningKey):
				if keyErr == nil {
					keyErr = err
					errs = append(errs, err)
					stopRuns()
				}
				ev.Status, ev.Reason = string(contract.Errored), err.Error()
				rep.Cancelled++
			case err != nil && r.holding(runCtx):
				ev = r.held(t.Commit, run, err.Error(), rep)
			case err != nil:
				errs = append(errs, fmt.Errorf("run %s of %s: %w", contract.ShortID(run.ID), run.Experiment, err))
				ev.Status, ev.Reason = string(contract.Errored), err.Error()
				rep.Cancelled++
			case res.Status == contract.Errored && r.holding(runCtx):
				ev = r.held(t.Commit, run, res.Error, rep)
			case !res.Status.Cacheable():
				ev.Status, ev.Reason = string(res.Status), res.Error
				rep.Cancelled++
				if res.Status == contract.Errored {
					errs = append(errs, fmt.Errorf("run %s of %s: %s", contract.ShortID(run.ID), run.Experiment, res.Error))
				}
			default:
				if h, ok := r.release(run); ok {
					rep.Released = append(rep.Released, h)
				}
				if res.Cached {
					// Another expsync on this store ran it while this one
					// waited for the run's lock.
					rep.Recovered++
					ev.Recovered = true
				} else {
					rep.Executed++
				}
				if res.Status == contract.Succeeded {
					rep.Succeeded++
				} else {
					rep.Failed++
				}
				ev.Status, ev.Reason, ev.Duration = string(res.Status), res.Error, res.FinishedAt.Sub(res.StartedAt)
			}
			r.emit(t, ev)
		}(run)
	}
	wg.Wait()
	return errors.Join(errs...)
}

// holding reports whether a run that failed on this machine is held
// (serve) rather than reported as an error: never when it was cancelled.
func (r *Reconciler) holding(runCtx context.Context) bool {
	return r.Retry.Base > 0 && runCtx.Err() == nil
}

// held puts a run that failed on this machine on hold: it is not an error
// of the reconcile (serve would log it at every poll) but a HeldRun in the
// report, tried again when its backoff ends.
func (r *Reconciler) held(commit string, run render.Run, reason string, rep *Report) Event {
	h := r.hold(run, reason)
	rep.Held++
	rep.HeldRuns = append(rep.HeldRuns, h)
	rep.noteRetry(h.Next)
	return Event{Kind: EventRunHeld, Commit: commit, RunID: run.ID, Experiment: run.Experiment, Status: string(contract.Errored),
		Reason: reason, Hold: h}
}

// runOne puts what the run reads into the store, then executes it. A
// repository input whose bytes do not match its declared digest ends the
// run as InputMismatch before anything starts.
func (r *Reconciler) runOne(ctx context.Context, prep *preparer, run render.Run) (*contract.Result, error) {
	c := render.Contract(run)
	if err := prep.context(ctx, c.Context); err != nil {
		return nil, err
	}
	if mismatch, err := prep.inputs(ctx, c); err != nil {
		return nil, err
	} else if mismatch != "" {
		now := time.Now().UTC()
		return &contract.Result{RunID: run.ID, Status: contract.InputMismatch, ExitCode: -1, Attempts: 0,
			StartedAt: now, FinishedAt: now, Error: mismatch, SchedulingDigest: c.SchedulingDigest(),
			Requests: contract.Requests{CPU: c.Limits.CPU, Memory: c.Limits.Memory}}, nil
	}
	return r.Executor.Execute(ctx, run)
}

// preparer exports each context tree and repository input to the store
// once per reconcile.
type preparer struct {
	st   store.Store
	snap tree.Reader
	mu   sync.Mutex
	// trees holds the export outcome per context tree ID.
	trees map[string]error
}

func (p *preparer) context(ctx context.Context, cc contract.Context) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if err, ok := p.trees[cc.Tree]; ok {
		return err
	}
	id, err := store.ExportTree(ctx, p.st, p.snap, cc.Path)
	if err == nil && string(id) != cc.Tree {
		err = fmt.Errorf("context %q has tree %s in the snapshot, the contract says %s", cc.Path, id, cc.Tree)
	}
	if err != nil {
		err = fmt.Errorf("export context %q to the store: %w", cc.Path, err)
	}
	p.trees[cc.Tree] = err
	return err
}

// inputs puts the repository files among c's inputs into the store and
// returns a message naming the input and both digests when one does not
// match.
func (p *preparer) inputs(ctx context.Context, c contract.Contract) (string, error) {
	for _, in := range c.Inputs {
		if in.RepoPath == "" {
			continue // fetched and checked by the runner
		}
		if p.present(ctx, in.SHA256) {
			continue
		}
		data, err := p.snap.ReadFile(in.RepoPath, 0)
		if err != nil {
			return "", fmt.Errorf("input %q: read repository file %s: %w", in.Name, in.RepoPath, err)
		}
		if _, err := p.st.Put(ctx, bytes.NewReader(data), in.SHA256); err != nil {
			var mm *store.MismatchError
			if errors.As(err, &mm) {
				return fmt.Sprintf("input %q (repository file %s): declared sha256 %s, the file has sha256 %s; the command was not started",
					in.Name, in.RepoPath, in.SHA256, contract.SHA256Hex(data)), nil
			}
			return "", fmt.Errorf("input %q: store repository file %s: %w", in.Name, in.RepoPath, err)
		}
	}
	return "", nil
}

// present reports whether the store holds the object with its bytes. A
// store that can rehash objects (once per process and file) drops one cut
// short or corrupted on disk, which the caller then stores again from the
// repository file.
func (p *preparer) present(ctx context.Context, sha string) bool {
	if v, ok := p.st.(store.Verifier); ok {
		return v.Verify(ctx, sha) == nil
	}
	has, err := p.st.Has(ctx, sha)
	return err == nil && has
}
