package reconcile

import (
	"github.com/expsync/expsync/render"
	"sort"
	"sync"
	"time"
)

// RetryPolicy spaces out the attempts of a run that cannot run on this
// machine, for a long-running caller (expsync serve). A failure that is a
// property of the run and the inputs it names (a wrong sha256, a URL
// answering 404, a command not found) is the run's result, committed like
// any other; what is left — a request larger than the executor, a missing
// secret, a store object that is gone, an input server refusing this
// machine — depends on this machine and is not committed: the run is held
// and tried again after Base, then twice as long after each failure, up
// to Max. The zero policy holds nothing (expsync run: one reconcile, whose
// error names each such run).
type RetryPolicy struct {
	Base time.Duration
	// Max caps the wait (default 10 minutes: a run held through an outage
	// of the input server or the store is tried soon after it ends).
	Max time.Duration
}

func (p RetryPolicy) max() time.Duration {
	if p.Max > 0 {
		return p.Max
	}
	return 10 * time.Minute
}

// wait is the time after the n-th failure (n ≥ 1) before the next attempt.
func (p RetryPolicy) wait(n int) time.Duration {
	d := p.Base
	for i := 1; i < n && d < p.max(); i++ {
		d *= 2
	}
	return min(d, p.max())
}

// HeldRun is a run that failed on this machine and waits to be tried again.
type HeldRun struct {
	RunID, Experiment string
	// Reason is the last failure; Failures counts the attempts that failed.
	Reason   string
	Failures int
	// Since is the first failure; Next the earliest next attempt, Wait
	// from the last failure.
	Since, Next time.Time
	Wait        time.Duration
	// Changed is set in a Report when this reconcile put the run on hold
	// or its reason changed: callers log a held run once per change.
	Changed bool
}

// holdSet holds the runs of every target by holdKey.
type holdSet struct {
	mu sync.Mutex
	m  map[string]*HeldRun
}

// holdKey names a run with its resources and retries: a commit that
// changes only its resource request (not part of the run ID) to fit the
// machine is tried at once, not when the old request's backoff ends.
func holdKey(run render.Run) string {
	return run.ID + " " + run.Contract.SchedulingDigest()
}

// holdBack drops from runs those whose next attempt is not due, counting
// them in rep, and forgets holds not planned for long (their experiment
// was edited or deleted).
func (r *Reconciler) holdBack(runs []render.Run, rep *Report) []render.Run {
	if r.Retry.Base <= 0 {
		return runs
	}
	now := time.Now()
	r.holds.mu.Lock()
	defer r.holds.mu.Unlock()
	for key, h := range r.holds.m {
		if now.Sub(h.Next) > 2*r.Retry.max() {
			delete(r.holds.m, key)
		}
	}
	if len(r.holds.m) == 0 {
		return runs
	}
	keep := runs[:0:0]
	for _, run := range runs {
		h, ok := r.holds.m[holdKey(run)]
		if ok && now.Before(h.Next) {
			rep.Held++
			rep.noteRetry(h.Next)
			continue
		}
		keep = append(keep, run)
	}
	return keep
}

// hold records a failed attempt of run and returns its hold, with Changed
// set when the run was not held before or its reason changed.
func (r *Reconciler) hold(run render.Run, reason string) HeldRun {
	now := time.Now()
	r.holds.mu.Lock()
	defer r.holds.mu.Unlock()
	if r.holds.m == nil {
		r.holds.m = map[string]*HeldRun{}
	}
	key := holdKey(run)
	h, ok := r.holds.m[key]
	if !ok {
		h = &HeldRun{RunID: run.ID, Experiment: run.Experiment, Since: now}
		r.holds.m[key] = h
	}
	changed := !ok || h.Reason != reason
	h.Reason = reason
	h.Failures++
	// Attempts happen at polls: a run due a hair after a poll would wait
	// for the next one, doubling its wait.
	h.Wait = r.Retry.wait(h.Failures)
	h.Next = now.Add(h.Wait - r.Retry.Base/2)
	out := *h
	out.Changed = changed
	return out
}

// release forgets the hold of a run that finished; it returns the hold
// (ok false when the run was not held).
// Holds of the run under other resources are forgotten with it.
func (r *Reconciler) release(run render.Run) (HeldRun, bool) {
	r.holds.mu.Lock()
	defer r.holds.mu.Unlock()
	var out HeldRun
	found := false
	for key, h := range r.holds.m {
		if h.RunID == run.ID {
			if !found || h.Since.Before(out.Since) {
				out = *h
			}
			found = true
			delete(r.holds.m, key)
		}
	}
	return out, found
}

// Held lists the runs held now, by experiment and run ID.
func (r *Reconciler) Held() []HeldRun {
	r.holds.mu.Lock()
	defer r.holds.mu.Unlock()
	out := make([]HeldRun, 0, len(r.holds.m))
	for _, h := range r.holds.m {
		out = append(out, *h)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Experiment != out[j].Experiment {
			return out[i].Experiment < out[j].Experiment
		}
		return out[i].RunID < out[j].RunID
	})
	return out
}

// noteRetry keeps the earliest next attempt of the held runs.
func (rep *Report) noteRetry(next time.Time) {
	if rep.NextRetry.IsZero() || next.Before(rep.NextRetry) {
		rep.NextRetry = next
	}
}
