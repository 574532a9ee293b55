package controller

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"k8s.io/apimachinery/pkg/types"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/review"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/store"
)

// RepositoryExecutor runs one ExperimentRepository's runs (executor/kube
// in a cluster): the engine's Executor, the store it collects results
// from, and the clean-up of Jobs no plan keeps.
type RepositoryExecutor interface {
	// Execute and Shutdown (deploy.Executor): the controller never shuts a
	// repository's executor down while it runs; stopping the workers
	// leaves Jobs in flight to be adopted.
	deploy.Executor
	Store() store.Store
	// StoreURL is the store location written into run contracts.
	StoreURL() string
	// Prune deletes the repository's Jobs of runs not in keep (every ref
	// of the repository was planned: keep is the union of their runs).
	Prune(ctx context.Context, keep map[string]bool) error
	// QuotaRefusal says which quota refuses the repository's Jobs now
	// ("" when none does).
	QuotaRefusal() string
	// DeleteRefusal says why the repository's Jobs cannot be deleted (a
	// 403: the controller's RBAC), "" when they can.
	DeleteRefusal() string
}

// ExecutorFactory builds the executor of one ExperimentRepository from its
// spec (namespace, service account, runner image, store claim, queue,
// priority class, in-flight bound) and its owner reference.
type ExecutorFactory func(obj *v1alpha1.ExperimentRepository) (RepositoryExecutor, error)

// Causes of stopping a repository's workers. None of them is
// reconcile.ErrRunObsolete: Jobs in flight keep running and are adopted
// when the repository is reconciled again.
var (
	errSuspended    = errors.New("the ExperimentRepository is suspended")
	errReconfigured = errors.New("the ExperimentRepository's spec or Secrets changed")
	errDeleted      = errors.New("the ExperimentRepository was deleted")
	errShutdown     = errors.New("the controller is stopping")
)

// stallError is a problem of the spec or the controller's deployment that
// no retry fixes (the object is then Stalled with Reason): a missing store
// mount, no runner image.
type stallError struct {
	Reason string
	msg    string
}

func (e *stallError) Error() string { return e.msg }

func stalled(reason, format string, args ...any) error {
	return &stallError{Reason: reason, msg: fmt.Sprintf(format, args...)}
}

// repoState is one ExperimentRepository's engine in this process: its Git
// source, the reconcile engine with its executor, the ref workers, and the
// progress the engine reported. It is rebuilt when the object's generation
// or the Secrets it reads change.
type repoState struct {
	key        types.NamespacedName
	uid        types.UID
	generation int64
	versions   string // of the Secrets read (see credentials)
	interval   time.Duration

	src     *gitsource.Source
	engine  *reconcile.Reconciler
	exec    RepositoryExecutor
	workers *reconcile.Workers
	order   func(ref string) int
	// review posts pull requests' statuses and comment (spec.forge; nil
	// without): internal/review's hook, the one serve uses.
	review *review.Hook

	mu       sync.Mutex
	progress map[string]*refProgress
	// lastPoll is when the refs were last listed; pollErr its error,
	// failures how many listings failed in a row and retryAt when the
	// next one is due after a failure (see reconcileSource).
	lastPoll time.Time
	pollErr  error
	failures int
	retryAt  time.Time
	// empty: the last listing found a repository without commits.
	empty bool
	// handledRequest is the reconcile.fluxcd.io/requestedAt value polled for.
	handledRequest string
	// pruned: every ref was planned once and Prune ran since.
	pruned bool
	// notified holds, per ref, the last source commit an event announced
	// results of, so events are sent on changes only.
	notified map[string]string
	// refused holds, per ref, the last commit announced as running nothing
	// (not verified, no experiment loads).
	refused map[string]string
	// pushes is the Source's push count at the last metrics update.
	pushes int64
	// secretsRead is when the Secrets the engine was built from were last
	// read and found unchanged (see Settings.SecretsTTL).
	secretsRead time.Time
}

// credentialsFresh: the engine may be used without reading its Secrets
// again — same object and generation, Secrets read less than ttl ago and
// no new reconcile.fluxcd.io/requestedAt (an operator who rotated a Secret
// asks for it to be read now). A failing poll does not read them sooner:
// a repository whose server is gone would read its Secrets at every retry.
func (st *repoState) credentialsFresh(obj *v1alpha1.ExperimentRepository, ttl time.Duration) bool {
	requested, _ := meta.ReconcileAnnotationValue(obj.GetAnnotations())
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.uid == obj.UID && st.generation == obj.Generation && time.Since(st.secretsRead) < ttl &&
		requested == st.handledRequest
}

// pollDue tells whether the refs are to be listed now: never listed yet, a
// new reconcile.fluxcd.io/requestedAt, the interval passed since a listing
// that worked, or the backoff after one that failed (st.mu held).
func (st *repoState) pollDue(requested string, now time.Time) bool {
	switch {
	case st.lastPoll.IsZero() || requested != st.handledRequest:
		return true
	case st.pollErr != nil:
		return !now.Before(st.retryAt)
	default:
		return now.Sub(st.lastPoll) >= st.interval-st.interval/20
	}
}

// polled records a listing's outcome; after a failure the next listing
// waits base, then 2, 4, 8... times base, never more than the interval
// (st.mu held).
func (st *repoState) polled(err error, empty bool, requested string, base time.Duration, now time.Time) {
	st.lastPoll, st.pollErr, st.handledRequest, st.empty = now, err, requested, empty
	if err == nil {
		st.failures = 0
		return
	}
	st.failures++
	st.retryAt = now.Add(retryBackoff(st.failures, base, st.interval))
}

// retryBackoff is the wait after the n-th failure in a row: base·2^(n-1),
// at most limit.
func retryBackoff(n int, base, limit time.Duration) time.Duration {
	d := base
	for i := 1; i < n && d < limit; i++ {
		d *= 2
	}
	return min(d, limit)
}

// refProgress counts one ref's runs from the engine's events.
type refProgress struct {
	commit                              string
	planned, succeeded, failed, running int
	held                                int
	heldReason                          string
	runIDs                              map[string]bool // planned runs, for Prune
	resultsBranch, resultsCommit        string
	pushErr, signErr, err, invalid      string
	invalidCount                        int
	finished                            bool // the reconcile of commit ended
	lastFinishedCommit                  string
}

func (st *repoState) ref(name string) *refProgress {
	p := st.progress[name]
	if p == nil {
		p = &refProgress{}
		st.progress[name] = p
	}
	return p
}

// onEvent follows the engine's progress (called one event at a time).
func (st *repoState) onEvent(e reconcile.Event) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.ref(e.Ref)
	switch e.Kind {
	case reconcile.EventPlanned:
		*p = refProgress{commit: e.Commit, planned: e.Planned, succeeded: e.DoneSucceeded, failed: e.DoneFailed,
			running: e.Recover + e.Execute, held: e.Held, resultsBranch: p.resultsBranch, resultsCommit: p.resultsCommit,
			lastFinishedCommit: p.lastFinishedCommit}
	case reconcile.EventRunFinished:
		if e.Commit != p.commit {
			return
		}
		p.running = max(p.running-1, 0)
		switch e.Status {
		case "Succeeded":
			p.succeeded++
		case "Failed", "TimedOut", "InputMismatch":
			p.failed++
		}
	case reconcile.EventRunHeld:
		if e.Commit != p.commit {
			return
		}
		p.running = max(p.running-1, 0)
		p.held++
		p.heldReason = e.Reason
	case reconcile.EventCommitted:
		if e.ResultsCommit != "" {
			p.resultsCommit = e.ResultsCommit
		}
		p.pushErr = ""
	case reconcile.EventCommitFailed:
		if e.Err != nil {
			p.pushErr = "results not pushed yet (kept in the run cache, retried): " + e.Err.Error()
		}
	}
}

// finished records the end of a ref's reconcile.
func (st *repoState) finished(ref string, ch gitsource.RefChange, rep *reconcile.Report, err error) {
	st.mu.Lock()
	defer st.mu.Unlock()
	p := st.ref(ref)
	p.finished = true
	p.lastFinishedCommit = ch.New
	p.commit = ch.New
	p.resultsBranch = ch.ResultsBranch
	if p.resultsBranch == "" {
		p.resultsBranch = shortRef(ref)
	}
	p.running = 0
	p.err, p.signErr, p.invalid, p.invalidCount = "", "", "", 0
	if rep != nil {
		p.planned = rep.Planned
		p.succeeded = rep.DoneSucceeded + rep.Succeeded
		p.failed = rep.DoneFailed + rep.Failed
		p.held = rep.Held
		if rep.Invalid != nil {
			p.invalid = rep.Invalid.Error()
			p.invalidCount = rep.InvalidExperiments
		}
		if n := len(rep.Commits); n > 0 {
			p.resultsCommit = rep.Commits[n-1]
			p.pushErr = ""
		}
		p.runIDs = make(map[string]bool, len(rep.RunIDs))
		for _, id := range rep.RunIDs {
			p.runIDs[id] = true
		}
	}
	switch {
	case err == nil:
	case errors.Is(err, reconcile.ErrSigningKey):
		p.signErr = err.Error()
	case errors.Is(err, reconcile.ErrNotRunnable):
		// Reported through the ref's change (NotVerified).
	case errors.Is(err, reconcile.ErrPlan):
		p.invalid = err.Error()
		p.invalidCount = max(p.invalidCount, 1)
		p.planned, p.succeeded, p.failed = 0, 0, 0
	case isPushError(err):
		if p.pushErr == "" {
			p.pushErr = err.Error()
		}
	default:
		p.err = err.Error()
	}
}

// isPushError tells a failed results push from other errors.
func isPushError(err error) bool {
	return errors.Is(err, gitsource.ErrBranchDeleted) || strings.Contains(err.Error(), "commit results of")
}

func shortRef(ref string) string {
	const heads = "refs/heads/"
	if len(ref) > len(heads) && ref[:len(heads)] == heads {
		return ref[len(heads):]
	}
	return ref
}

// views flattens the workers' and the engine's state for the status.
func (st *repoState) views() []refView {
	states := st.workers.Refs()
	st.mu.Lock()
	defer st.mu.Unlock()
	var out []refView
	for _, rs := range states {
		if rs.Seen.Deleted() {
			continue
		}
		p := st.ref(rs.Ref)
		v := refView{Ref: rs.Ref, Order: st.order(rs.Ref), Commit: rs.Seen.New, Busy: rs.Busy}
		// The commit whose runs are in flight: the newest one once its
		// reconcile started; until then an earlier commit's (the ref's
		// worker goes on with it: expsync's own results commit, or a push
		// that kept its experiments), whose runs the status must show.
		inFlight := p.commit == rs.Seen.New || (rs.Busy && p.commit != "" && !p.finished)
		switch {
		case !rs.Seen.Runnable:
			v.NotVerified = fmt.Sprintf("commit %s may not run: %s", short(rs.Seen.New), rs.Seen.Reason)
			v.Busy = false
		case inFlight:
			if p.commit != rs.Seen.New {
				v.InFlight = p.commit
			}
			v.Planned, v.Succeeded, v.Failed, v.Running, v.Held = p.planned, p.succeeded, p.failed, p.running, p.held
			v.HeldReason = p.heldReason
			v.Invalid, v.InvalidCount = p.invalid, p.invalidCount
			v.PushErr, v.SignErr, v.Err = p.pushErr, p.signErr, p.err
		}
		if q := st.exec.QuotaRefusal(); q != "" && v.Held > 0 {
			v.HeldReason = q
		}
		// The results branch follows from the ref and spec.refs, known
		// from the first listing: a results commit pushed while the
		// commit's runs go on shows at once, always as <branch>@sha1:<hex>.
		v.ResultsBranch, v.ResultsCommit = rs.Seen.ResultsBranch, p.resultsCommit
		if v.ResultsBranch == "" {
			v.ResultsBranch = p.resultsBranch
		}
		out = append(out, v)
	}
	return out
}

// announcedRefused tells whether msg (Ready's) is about a commit whose
// refusal was announced already by its own event.
func (st *repoState) announcedRefused(msg string) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for ref, commit := range st.refused {
		if strings.Contains(msg, revision(ref, commit)) {
			return true
		}
	}
	return false
}

func short(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
