package reconcile

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/logging"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Interval between polls of each repository (default 30s).
	Interval time.Duration
	// Logger receives a record per notable thing (a new commit, a
	// reconcile's outcome, an error); nil discards.
	Logger *slog.Logger
	// Finished, when set, is told each reconcile's outcome (also a commit
	// that may not run: err wraps ErrNotRunnable). It must not block:
	// pull-request reports (package review) queue their work.
	Finished func(src *gitsource.Source, ch gitsource.RefChange, rep *Report, err error)
}

// Serve polls every source on an interval and reconciles each watched ref
// whose commit moved (see Workers: one reconcile per ref at a time, runs a
// newer commit no longer plans cancelled, failures tried again at the next
// poll). Serve returns when ctx ends, after the running reconciles
// committed what had finished.
func (d RefReconciler) Serve(ctx context.Context, sources []*gitsource.Source, opts ServeOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if d.Reconciler.Retry.Base <= 0 {
		// A run that cannot run on this machine is tried again after one
		// poll, then two, four... up to ten minutes, not at every poll.
		d.Reconciler.Retry.Base = opts.Interval
	}
	log := logging.OrDiscard(opts.Logger)
	// Each repository is polled on its own schedule, so a server that is
	// slow or stalled (bounded by gitsource's timeouts) delays only itself.
	var pollers sync.WaitGroup
	for _, src := range sources {
		wo := WorkersOptions{Logger: log}
		if opts.Finished != nil {
			wo.Finished = func(_ string, ch gitsource.RefChange, rep *Report, err error) {
				if ctx.Err() == nil {
					opts.Finished(src, ch, rep, err)
				}
			}
		}
		w := NewWorkers(ctx, d.Reconciler, src, d.ReconcileRef, wo)
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			defer w.Wait()
			pollEvery(ctx, w, opts.Interval, log)
		}()
	}
	pollers.Wait()
	return nil
}

// pollEvery polls one repository now and then every interval until ctx ends.
func pollEvery(ctx context.Context, w *Workers, interval time.Duration, log *slog.Logger) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		if _, err := w.Poll(ctx); err != nil && ctx.Err() == nil {
			log.Error("poll failed", logging.Repository, w.Source().URL(), "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
