package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// ServeOptions configure Serve.
type ServeOptions struct {
	// Interval between polls of each repository (default 30s).
	Interval time.Duration
	// Log receives one line per notable thing (a new commit, a reconcile's
	// outcome, an error); nil discards.
	Log func(format string, args ...any)
	// Finished, when set, is told each reconcile's outcome (also a commit
	// that may not run: err wraps ErrNotRunnable). It must not block:
	// pull-request reports (package review) queue their work.
	Finished func(src *gitsource.Source, ch gitsource.RefChange, rep *Report, err error)
}

// Serve polls every source on an interval and reconciles each watched ref
// whose commit moved, one reconcile per ref at a time. A new commit on a ref
// whose reconcile is still running cancels that reconcile's runs that the
// new commit no longer plans (their experiment was edited or deleted); the
// others go on and the new commit is reconciled next. A reconcile that
// failed (a push that did not land, a run that hit an infrastructure
// error) is tried again at the next poll. Serve returns when ctx ends,
// after the running reconciles committed what had finished.
func (l *Local) Serve(ctx context.Context, sources []*gitsource.Source, opts ServeOptions) error {
	if opts.Interval <= 0 {
		opts.Interval = 30 * time.Second
	}
	if l.Reconciler.Retry.Base <= 0 {
		// A run that cannot run on this machine is tried again after one
		// poll, then two, four... up to ten minutes, not at every poll.
		l.Reconciler.Retry.Base = opts.Interval
	}
	logf := opts.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	s := &server{l: l, logf: logf, finished: opts.Finished, workers: map[string]*refWorker{}}
	// Each repository is polled on its own schedule, so a server that is
	// slow or stalled (bounded by gitsource's timeouts) delays only itself.
	var pollers sync.WaitGroup
	for _, src := range sources {
		pollers.Add(1)
		go func() {
			defer pollers.Done()
			s.pollEvery(ctx, src, opts.Interval)
		}()
	}
	pollers.Wait()
	s.wg.Wait()
	return nil
}

// pollEvery polls one repository now and then every interval until ctx ends.
func (s *server) pollEvery(ctx context.Context, src *gitsource.Source, interval time.Duration) {
	tick := time.NewTicker(interval)
	defer tick.Stop()
	for {
		s.poll(ctx, src)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

type server struct {
	l        *Local
	logf     func(string, ...any)
	finished func(*gitsource.Source, gitsource.RefChange, *Report, error)
	mu       sync.Mutex
	workers  map[string]*refWorker
	wg       sync.WaitGroup
}

// refWorker reconciles one ref: latest holds the newest commit to do.
type refWorker struct {
	key    string
	src    *gitsource.Source
	mu     sync.Mutex
	latest *gitsource.RefChange
	retry  *gitsource.RefChange // last change whose reconcile failed or held runs
	// retryAt is when retry is due: the next poll after a failure, the
	// earliest next attempt of a held run otherwise.
	retryAt time.Time
	busy    bool
}

func (s *server) poll(ctx context.Context, src *gitsource.Source) {
	changes, err := src.Poll(ctx)
	if err != nil {
		if ctx.Err() == nil {
			s.logf("poll %s: %v", src.URL(), err)
		}
		// Retry failed reconciles even when polling failed? No: without
		// the server nothing can be pushed.
		return
	}
	seen := map[string]bool{}
	for _, ch := range changes {
		ch := ch
		key := TargetKey(src.URL(), ch.Ref)
		seen[key] = true
		w := s.worker(key, src)
		if ch.Deleted() {
			n := s.l.Reconciler.CancelExcept(key, nil)
			s.logf("%s %s deleted; cancelled %d runs", src.URL(), ch.Ref, n)
			w.mu.Lock()
			w.latest, w.retry = nil, nil
			w.mu.Unlock()
			continue
		}
		s.logf("%s %s: new commit %s (%s)", src.URL(), ch.Ref, short(ch.New), ch.Reason)
		s.cancelObsolete(ctx, src, key, ch)
		w.mu.Lock()
		w.latest, w.retry = &ch, nil
		w.mu.Unlock()
		s.kick(ctx, w)
	}
	// Refs whose last reconcile failed are tried again.
	s.mu.Lock()
	var retry []*refWorker
	for key, w := range s.workers {
		if !seen[key] && w.src == src {
			retry = append(retry, w)
		}
	}
	s.mu.Unlock()
	for _, w := range retry {
		w.mu.Lock()
		if w.retry != nil && w.latest == nil && !time.Now().Before(w.retryAt) {
			w.latest, w.retry = w.retry, nil
		}
		w.mu.Unlock()
		s.kick(ctx, w)
	}
}

func (s *server) worker(key string, src *gitsource.Source) *refWorker {
	s.mu.Lock()
	defer s.mu.Unlock()
	w := s.workers[key]
	if w == nil {
		w = &refWorker{key: key, src: src}
		s.workers[key] = w
	}
	return w
}

// cancelObsolete cancels the in-flight runs of key that the new commit
// does not plan.
func (s *server) cancelObsolete(ctx context.Context, src *gitsource.Source, key string, ch gitsource.RefChange) {
	if len(s.l.Reconciler.InFlight(key)) == 0 || !ch.Runnable {
		return
	}
	snap, err := src.Snapshot(ctx, ch.Ref, ch.New)
	if err != nil {
		s.logf("%s %s: snapshot %s: %v", src.URL(), ch.Ref, short(ch.New), err)
		return
	}
	defer snap.Close()
	plan, err := s.l.Reconciler.plan(Target{Commit: ch.New, Tree: snap})
	keep := map[string]bool{}
	if err == nil {
		for _, r := range plan.Runs {
			keep[r.ID] = true
		}
	} else {
		// A commit that does not plan (invalid files) keeps nothing: its
		// experiments cannot be what the running runs were for.
		s.logf("%s %s: %v", src.URL(), ch.Ref, err)
	}
	if n := s.l.Reconciler.CancelExcept(key, keep); n > 0 {
		s.logf("%s %s: commit %s edits or deletes experiments: cancelled %d in-flight runs", src.URL(), ch.Ref, short(ch.New), n)
	}
}

// kick starts the worker's loop unless it is running.
func (s *server) kick(ctx context.Context, w *refWorker) {
	w.mu.Lock()
	if w.busy || w.latest == nil {
		w.mu.Unlock()
		return
	}
	w.busy = true
	w.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			w.mu.Lock()
			ch := w.latest
			w.latest = nil
			if ch == nil || ctx.Err() != nil {
				w.busy = false
				w.mu.Unlock()
				return
			}
			w.mu.Unlock()
			rep, err := s.l.ReconcileRef(ctx, w.src, *ch)
			s.report(w, *ch, rep, err)
			if s.finished != nil && ctx.Err() == nil {
				s.finished(w.src, *ch, rep, err)
			}
			failed := err != nil && !errors.Is(err, ErrNotRunnable) && !errors.Is(err, ErrPlan)
			held := rep != nil && rep.Held > 0
			if (failed || held) && ctx.Err() == nil {
				w.mu.Lock()
				if w.latest == nil {
					w.retry, w.retryAt = ch, time.Time{}
					if !failed {
						w.retryAt = rep.NextRetry
					}
				}
				w.mu.Unlock()
			}
		}
	}()
}

func (s *server) report(w *refWorker, ch gitsource.RefChange, rep *Report, err error) {
	prefix := fmt.Sprintf("%s %s at %s", w.src.URL(), ch.Ref, short(ch.New))
	if rep != nil {
		s.reportHolds(prefix, rep)
	}
	switch {
	case rep != nil && err == nil && rep.Held > 0 && rep.Executed+rep.Recovered+rep.Cancelled == 0 && len(rep.Commits) == 0:
		// Only held runs, tried again or still waiting: their changes
		// were logged above, the rest would repeat at every attempt.
	case rep != nil && rep.NothingToDo() && err == nil:
		s.logf("%s: nothing to do (%d runs done)", prefix, rep.Done)
	case rep != nil:
		s.logf("%s: %d planned, %d done, %d executed, %d recovered, %d succeeded, %d failed, %d not finished, %d held; commits %v",
			prefix, rep.Planned, rep.Done, rep.Executed, rep.Recovered, rep.Succeeded, rep.Failed, rep.Cancelled, rep.Held, rep.Commits)
	}
	if err != nil {
		s.logf("%s: %v", prefix, err)
	}
}

// reportHolds logs each held run once per change: when it is first held
// or its reason changes (with what to do), and when it finally ran.
func (s *server) reportHolds(prefix string, rep *Report) {
	for _, h := range rep.HeldRuns {
		if !h.Changed {
			continue
		}
		s.logf("%s: run %s of %s cannot run on this machine and is held (not committed): %s; "+
			"tried again in %s, then after twice as long each time up to %s; a commit that changes the run or its resources "+
			"tries it at once, and so does a restart of serve",
			prefix, short(h.RunID), h.Experiment, h.Reason, roundWait(h.Wait), s.l.Reconciler.Retry.max())
	}
	for _, h := range rep.Released {
		s.logf("%s: run %s of %s, held since %s after %d failed attempts, has run",
			prefix, short(h.RunID), h.Experiment, h.Since.UTC().Format(time.RFC3339), h.Failures)
	}
}

func roundWait(d time.Duration) time.Duration {
	if d < time.Second {
		return d.Round(time.Millisecond)
	}
	return d.Round(time.Second)
}
