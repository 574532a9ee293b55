package reconcile

import "time"

// EventKind names a progress event.
type EventKind string

const (
	// EventPlanned: the commit was planned and classified.
	EventPlanned EventKind = "planned"
	// EventRunFinished: a run finished (or was recovered from the cache).
	EventRunFinished EventKind = "run-finished"
	// EventRunHeld: a run failed on this machine and is held, to be tried
	// again later (Hold says when; Hold.Changed when it was not held before
	// or its reason changed). Only with a RetryPolicy.
	EventRunHeld EventKind = "run-held"
	// EventCommitted: a batch of results was committed and pushed.
	EventCommitted EventKind = "committed"
	// EventCommitFailed: a batch could not be pushed yet; it is retried.
	EventCommitFailed EventKind = "commit-failed"
)

// Event is one progress report of a reconcile.
type Event struct {
	Kind EventKind
	// Repository and Ref name the target (its URL, credentials stripped,
	// and full ref name); Commit is the commit being reconciled.
	Repository, Ref string
	Commit          string
	// Planned: counts of the plan; Done splits into DoneSucceeded and
	// DoneFailed by the recorded status; Held runs wait for their backoff.
	Planned, Done, Recover, Execute int
	DoneSucceeded, DoneFailed, Held int
	// RunFinished.
	RunID, Experiment string
	Status            string
	Recovered         bool
	Duration          time.Duration
	Reason            string
	// RunHeld.
	Hold HeldRun
	// Committed: the results commit and how many run folders it carries.
	ResultsCommit string
	Runs          int
	Err           error
}

func (r *Reconciler) emit(t Target, e Event) {
	if r.Events == nil {
		return
	}
	e.Repository, e.Ref = t.Repository, t.Ref
	r.eventsMu.Lock()
	defer r.eventsMu.Unlock()
	r.Events(e)
}
