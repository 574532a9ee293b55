package reconcile

import (
	"context"
	"errors"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/logging"
)

// ErrRunObsolete is the cancellation cause (context.Cause) of a run that a
// newer commit no longer plans: its experiment was edited or deleted, or
// its branch was. An executor that keeps runs outside this process (a Job)
// deletes such a run; any other cancellation (shutdown, suspend) leaves it
// running for the next process to adopt.
var ErrRunObsolete = errors.New("run is no longer planned by its ref")

// RefReconcileFunc reconciles the commit a poll reported for one ref
// (Local.ReconcileRef, or a controller's per-repository equivalent).
type RefReconcileFunc func(ctx context.Context, src *gitsource.Source, ch gitsource.RefChange) (*Report, error)

// WorkersOptions configure Workers.
type WorkersOptions struct {
	// Logger receives one record per notable thing, with the keys of
	// internal/logging (repository, ref, commit, experiment, runID); nil
	// discards.
	Logger *slog.Logger
	// Finished is called after each reconcile of a ref ends, from the
	// ref's worker goroutine.
	Finished func(ref string, ch gitsource.RefChange, rep *Report, err error)
}

// Workers reconcile the watched refs of one repository, one reconcile per
// ref at a time: `expsync serve` polls them on a ticker, `expsync
// controller` at each Reconcile of the repository's object. A new commit on
// a ref whose reconcile is still running cancels that reconcile's runs that
// the new commit no longer plans (cause ErrRunObsolete); the others go on
// and the new commit is reconciled next. A reconcile that failed (a push
// that did not land, a run that hit an infrastructure error) is tried
// again at the next poll; one that held runs when their backoff ends.
type Workers struct {
	r         *Reconciler
	src       *gitsource.Source
	reconcile RefReconcileFunc
	opts      WorkersOptions
	// ctx is what every reconcile runs under: Stop cancels it.
	ctx    context.Context
	cancel context.CancelCauseFunc

	mu   sync.Mutex
	refs map[string]*refWorker
	wg   sync.WaitGroup
}

// NewWorkers returns the workers of src; their reconciles run under ctx
// (until Stop).
func NewWorkers(ctx context.Context, r *Reconciler, src *gitsource.Source, reconcile RefReconcileFunc, opts WorkersOptions) *Workers {
	opts.Logger = logging.OrDiscard(opts.Logger).With(logging.Repository, src.URL())
	ctx, cancel := context.WithCancelCause(ctx)
	return &Workers{r: r, src: src, reconcile: reconcile, opts: opts, ctx: ctx, cancel: cancel, refs: map[string]*refWorker{}}
}

// refWorker reconciles one ref: latest holds the newest commit to do.
type refWorker struct {
	ref    string
	key    string
	mu     sync.Mutex
	latest *gitsource.RefChange
	retry  *gitsource.RefChange // last change whose reconcile failed or held runs
	// retryAt is when retry is due: the next poll after a failure, the
	// earliest next attempt of a held run otherwise.
	retryAt time.Time
	busy    bool
	// seen is the newest change reported for the ref (deleted or not).
	seen gitsource.RefChange
	// last is the outcome of the last finished reconcile.
	last *RefOutcome
}

// RefOutcome is how the last reconcile of a ref ended.
type RefOutcome struct {
	Change   gitsource.RefChange
	Report   *Report
	Err      error
	Finished time.Time
}

// RefState is what the workers know of one ref now.
type RefState struct {
	Ref string
	// Seen is the newest change a poll reported (Seen.Deleted(): the ref
	// is gone; !Seen.Runnable: its commit may not run, Seen.Reason says
	// why).
	Seen gitsource.RefChange
	// Busy: a reconcile of the ref is running or waiting to run.
	Busy bool
	// Retrying: the last reconcile failed or held runs, and is tried again
	// at a later poll.
	Retrying bool
	// Last is the last finished reconcile (nil before the first).
	Last *RefOutcome
}

// Poll lists the repository's refs once and hands each change to its ref's
// worker; refs whose last reconcile failed are tried again when due. ctx
// bounds the listing only.
func (w *Workers) Poll(ctx context.Context) ([]gitsource.RefChange, error) {
	changes, err := w.src.Poll(ctx)
	if err != nil {
		// Without the server nothing can be pushed either: failed
		// reconciles wait for a poll that works.
		return nil, err
	}
	seen := map[string]bool{}
	for _, ch := range changes {
		ch := ch
		seen[ch.Ref] = true
		rw := w.worker(ch.Ref)
		rw.mu.Lock()
		rw.seen = ch
		rw.mu.Unlock()
		if ch.Deleted() {
			n := w.r.CancelExcept(rw.key, nil)
			w.opts.Logger.Info("ref deleted; its runs cancelled", logging.Ref, ch.Ref, "cancelled", n)
			rw.mu.Lock()
			rw.latest, rw.retry = nil, nil
			rw.mu.Unlock()
			continue
		}
		w.opts.Logger.Info("new commit", logging.Ref, ch.Ref, logging.Commit, ch.New, "reason", ch.Reason)
		w.cancelObsolete(ctx, rw.key, ch)
		rw.mu.Lock()
		rw.latest, rw.retry = &ch, nil
		rw.mu.Unlock()
		w.kick(rw)
	}
	// Refs whose last reconcile failed are tried again.
	w.mu.Lock()
	var retry []*refWorker
	for ref, rw := range w.refs {
		if !seen[ref] {
			retry = append(retry, rw)
		}
	}
	w.mu.Unlock()
	for _, rw := range retry {
		rw.mu.Lock()
		if rw.retry != nil && rw.latest == nil && !time.Now().Before(rw.retryAt) {
			rw.latest, rw.retry = rw.retry, nil
		}
		rw.mu.Unlock()
		w.kick(rw)
	}
	return changes, nil
}

// Refs returns the state of every ref a poll reported, sorted by name.
func (w *Workers) Refs() []RefState {
	w.mu.Lock()
	list := make([]*refWorker, 0, len(w.refs))
	for _, rw := range w.refs {
		list = append(list, rw)
	}
	w.mu.Unlock()
	out := make([]RefState, 0, len(list))
	for _, rw := range list {
		rw.mu.Lock()
		out = append(out, RefState{Ref: rw.ref, Seen: rw.seen, Busy: rw.busy || rw.latest != nil, Retrying: rw.retry != nil, Last: rw.last})
		rw.mu.Unlock()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Ref < out[j].Ref })
	return out
}

// Source is the repository the workers poll.
func (w *Workers) Source() *gitsource.Source { return w.src }

// Stop cancels every reconcile with cause (their runs see it as
// context.Cause) and waits until they committed what had finished.
func (w *Workers) Stop(cause error) {
	w.cancel(cause)
	w.wg.Wait()
}

// Wait waits for the running reconciles (after the context given to
// NewWorkers ended).
func (w *Workers) Wait() { w.wg.Wait() }

func (w *Workers) worker(ref string) *refWorker {
	w.mu.Lock()
	defer w.mu.Unlock()
	rw := w.refs[ref]
	if rw == nil {
		rw = &refWorker{ref: ref, key: TargetKey(w.src.URL(), ref)}
		w.refs[ref] = rw
	}
	return rw
}

// cancelObsolete cancels the in-flight runs of key that the new commit
// does not plan.
func (w *Workers) cancelObsolete(ctx context.Context, key string, ch gitsource.RefChange) {
	if len(w.r.InFlight(key)) == 0 || !ch.Runnable {
		return
	}
	snap, err := w.src.Snapshot(ctx, ch.Ref, ch.New)
	if err != nil {
		w.opts.Logger.Error("snapshot failed", logging.Ref, ch.Ref, logging.Commit, ch.New, "err", err)
		return
	}
	defer snap.Close()
	plan, err := w.r.plan(Target{Commit: ch.New, Tree: snap})
	keep := map[string]bool{}
	if plan != nil {
		for _, r := range plan.Runs {
			keep[r.ID] = true
		}
	}
	if err != nil {
		// A commit that does not plan (invalid files) keeps only the runs
		// of its valid experiments, when the reconciler runs those.
		w.opts.Logger.Warn("commit does not plan", logging.Ref, ch.Ref, logging.Commit, ch.New, "err", err)
	}
	if n := w.r.CancelExcept(key, keep); n > 0 {
		w.opts.Logger.Info("commit edits or deletes experiments: in-flight runs cancelled", logging.Ref, ch.Ref, logging.Commit, ch.New, "cancelled", n)
	}
}

// kick starts the worker's loop unless it is running.
func (w *Workers) kick(rw *refWorker) {
	rw.mu.Lock()
	if rw.busy || rw.latest == nil || w.ctx.Err() != nil {
		rw.mu.Unlock()
		return
	}
	rw.busy = true
	rw.mu.Unlock()
	w.wg.Add(1)
	go func() {
		defer w.wg.Done()
		for {
			rw.mu.Lock()
			ch := rw.latest
			rw.latest = nil
			if ch == nil || w.ctx.Err() != nil {
				rw.busy = false
				rw.mu.Unlock()
				return
			}
			rw.mu.Unlock()
			rep, err := w.reconcile(w.ctx, w.src, *ch)
			w.report(*ch, rep, err)
			failed := err != nil && !errors.Is(err, ErrNotRunnable) && !errors.Is(err, ErrPlan)
			held := rep != nil && rep.Held > 0
			rw.mu.Lock()
			rw.last = &RefOutcome{Change: *ch, Report: rep, Err: err, Finished: time.Now()}
			if (failed || held) && w.ctx.Err() == nil && rw.latest == nil {
				rw.retry, rw.retryAt = ch, time.Time{}
				if !failed {
					rw.retryAt = rep.NextRetry
				}
			}
			rw.mu.Unlock()
			if w.opts.Finished != nil {
				w.opts.Finished(ch.Ref, *ch, rep, err)
			}
		}
	}()
}

func (w *Workers) report(ch gitsource.RefChange, rep *Report, err error) {
	log := w.opts.Logger.With(logging.Ref, ch.Ref, logging.Commit, ch.New)
	if rep != nil {
		w.reportHolds(log, rep)
	}
	switch {
	case rep != nil && err == nil && rep.Held > 0 && rep.Executed+rep.Recovered+rep.Cancelled == 0 && len(rep.Commits) == 0:
		// Only held runs, tried again or still waiting: their changes
		// were logged above, the rest would repeat at every attempt.
	case rep != nil && rep.NothingToDo() && err == nil:
		log.Info("nothing to do", "done", rep.Done)
	case rep != nil:
		log.Info("reconciled", "planned", rep.Planned, "done", rep.Done, "executed", rep.Executed, "recovered", rep.Recovered,
			"succeeded", rep.Succeeded, "failed", rep.Failed, "notFinished", rep.Cancelled, "held", rep.Held, "commits", rep.Commits)
	}
	if err != nil {
		log.Error("reconcile failed", "err", err)
	}
	if rep != nil && rep.Invalid != nil {
		log.Warn("experiments do not load and did not run (the others did)", "invalid", rep.InvalidExperiments, "err", rep.Invalid)
	}
}

// reportHolds logs each held run once per change: when it is first held
// or its reason changes (with what to do), and when it finally ran.
func (w *Workers) reportHolds(log *slog.Logger, rep *Report) {
	for _, h := range rep.HeldRuns {
		if !h.Changed {
			continue
		}
		log.Warn("run cannot run on this machine and is held (not committed): tried again after retryIn, then after twice as long each time up to maxRetryIn; "+
			"a commit that changes the run or its resources tries it at once, and so does a restart of serve",
			logging.RunID, h.RunID, logging.Experiment, h.Experiment, "reason", h.Reason, "retryIn", roundWait(h.Wait), "maxRetryIn", w.r.Retry.max())
	}
	for _, h := range rep.Released {
		log.Info("held run has run", logging.RunID, h.RunID, logging.Experiment, h.Experiment,
			"heldSince", h.Since.UTC().Format(time.RFC3339), "failedAttempts", h.Failures)
	}
}

func roundWait(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}
