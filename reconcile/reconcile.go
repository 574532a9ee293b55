// Package reconcile ties the parts of expsync together for one branch: it
// snapshots a commit, plans its runs, skips the ones whose results are
// already in the branch (signed by a trusted key), recovers the ones whose
// results are in the run cache, executes the rest, attests each result and
// commits the results back in batches.
//
// It is idempotent and restartable: everything it decides is derived from
// the branch and the store, so running it again with nothing new does
// nothing, and a process killed half-way loses at most the runs in flight.
//
// The Reconciler depends on interfaces only — store.Store, Executor, Pusher
// and Keys — so a deployment plugs in its own parts: internal/deploy
// assembles the ones expsync ships (the local executor for `expsync run`
// and `serve`, Kubernetes Jobs for the controller).
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// Target is one commit of one branch to reconcile.
type Target struct {
	// Repository is the repository's URL as recorded in results (credentials
	// are stripped before anything is written).
	Repository string
	// Ref is the full ref name the commit was seen on (refs/heads/main).
	Ref string
	// Commit is the commit ID and Tree its snapshot.
	Commit string
	Tree   tree.Reader
	// Results is the tree the results go to when it is not Tree: the head
	// of the ref's results branch (nil when that branch does not exist
	// yet). Done runs are looked up there.
	Results tree.Reader
	// SeparateResults is set when results go to a results branch.
	SeparateResults bool
	// Pusher commits results back (to Ref's branch or its results branch).
	Pusher Pusher
}

// resultsTree is where finished runs are looked up.
func (t Target) resultsTree() tree.Reader {
	if !t.SeparateResults {
		return t.Tree
	}
	if t.Results == nil {
		return tree.NewMemory()
	}
	return t.Results
}

// Pusher writes a batch of files as one commit on top of the branch head.
// merge is called with the head's tree — again after each lost push race,
// with the new head — and returns the changes to commit; no change means
// nothing to commit. It returns the new commit ("" when nothing was
// committed).
type Pusher interface {
	CommitBack(ctx context.Context, message string, files map[string][]byte, merge MergeFunc) (string, error)
}

// Reconciler holds what stays the same across reconciles.
type Reconciler struct {
	Store store.Store
	// Executor runs contracts (normally executor/local).
	Executor Executor
	// Signer signs every run's statement; Trusted are the keys whose
	// signatures make a results folder count as done (include the signer's
	// own public key).
	Signer  *attest.Signer
	Trusted attest.Verifiers
	// Keys, when set, replaces Signer and Trusted: they are then loaded
	// lazily (a deployment decrypts its key while the first runs execute).
	Keys      Keys
	BuilderID string
	// ExecutorName is recorded in run.json ("local").
	ExecutorName string

	Plan render.PlanOptions
	// BatchInterval is how often finished runs are committed (0: 10s).
	BatchInterval time.Duration
	// Events receives progress; nil discards it. It is called from several
	// goroutines, one event at a time.
	Events func(Event)
	// Retry holds runs that cannot run on this machine (see RetryPolicy);
	// the zero policy reports them as errors and holds nothing.
	Retry RetryPolicy
	// RunValidExperiments runs the valid experiments of a commit whose
	// other experiment files do not load (the controller: one invalid
	// experiment stalls only itself); Report.Invalid then carries the
	// errors (wrapped in ErrPlan) and Reconcile's error is about the valid
	// runs alone. Without it such a commit plans nothing (expsync run:
	// fix the files first).
	RunValidExperiments bool
	// CommitMessage writes the message of a results commit; nil: the
	// default summary. The Expsync-Source-Commit trailer is appended
	// either way.
	CommitMessage func(CommitSummary) (string, error)

	mu       sync.Mutex
	inflight map[string]map[string]context.CancelCauseFunc // target key -> run ID -> cancel
	verified verifiedTrees
	// statements remembers the reproduction statements listed per run
	// folder tree, for the READMEs (reproductions.go).
	statements statementLists
	eventsMu   sync.Mutex
	holds      holdSet
}

// Report says what one reconcile did.
type Report struct {
	Commit string
	// Planned runs, and how each was handled.
	Planned   int
	Done      int // already in the branch, verified
	Recovered int // result from the run cache, committed without a rerun
	Executed  int
	Succeeded int // of Executed and Recovered
	Failed    int
	Cancelled int // cancelled by a newer commit or shutdown: not committed
	// Held runs failed on this machine and wait to be tried again (see
	// RetryPolicy): not committed, not counted in Cancelled. HeldRuns
	// are those that failed in this reconcile; NextRetry is the earliest
	// next attempt of any; Released were held and have now finished.
	Held      int
	HeldRuns  []HeldRun
	Released  []HeldRun
	NextRetry time.Time
	// Commits made on the branch, oldest first.
	Commits []string
	// Forged folders found in the branch that did not verify.
	Untrusted []string
	// Invalid holds the errors of experiment files that did not load
	// (file:line:col each) when RunValidExperiments ran the others;
	// InvalidExperiments counts the experiments concerned.
	Invalid            error
	InvalidExperiments int
	// DoneSucceeded and DoneFailed split Done by the recorded status.
	DoneSucceeded, DoneFailed int
	// RunIDs are the planned runs' IDs (an executor whose runs outlive
	// the process prunes what no ref plans any more).
	RunIDs []string
}

// NothingToDo reports whether the reconcile found every run done.
func (r *Report) NothingToDo() bool {
	return r.Recovered == 0 && r.Executed == 0 && r.Cancelled == 0 && r.Held == 0 && len(r.Commits) == 0
}

// Reconcile runs the named steps of one reconcile of one commit.
func (r *Reconciler) Reconcile(ctx context.Context, t Target) (*Report, error) {
	rep := &Report{Commit: t.Commit}
	plan, err := r.plan(t)
	if err != nil && (!r.RunValidExperiments || plan == nil) {
		return rep, err
	}
	if err != nil {
		rep.Invalid = err
		for _, e := range plan.Experiments {
			if !e.Valid() {
				rep.InvalidExperiments++
			}
		}
		if rep.InvalidExperiments == 0 {
			rep.InvalidExperiments = 1 // a file that names no experiment it could load
		}
	}
	rep.Planned = len(plan.Runs)
	rep.RunIDs = make([]string, len(plan.Runs))
	for i, run := range plan.Runs {
		rep.RunIDs[i] = run.ID
	}
	layout := results.Layout{Root: plan.Config.Results}
	work, err := r.classify(ctx, t, layout, plan.Runs, rep)
	if err != nil {
		return rep, err
	}
	work.execute = r.holdBack(work.execute, rep)
	r.emit(t, Event{Kind: EventPlanned, Commit: t.Commit, Planned: rep.Planned, Done: rep.Done,
		DoneSucceeded: rep.DoneSucceeded, DoneFailed: rep.DoneFailed, Held: rep.Held,
		Recover: len(work.recover), Execute: len(work.execute)})
	if len(work.recover) == 0 && len(work.execute) == 0 {
		return rep, r.refreshSummaries(ctx, t, layout, plan.Runs, false, rep)
	}
	b := newBatcher(r, t, layout, work.known)
	b.plots = plotChoices(plan.Runs)
	b.start(ctx)
	rerun, recErr := r.recoverRuns(ctx, t, layout, work.recover, b, rep)
	var execErr error
	if errors.Is(recErr, ErrSigningKey) {
		rep.Cancelled += len(work.execute) // nothing could be signed
	} else {
		execErr = r.execute(ctx, t, layout, append(work.execute, rerun...), b, rep)
	}
	commits, flushErr := b.stop(ctx)
	rep.Commits = commits
	redrawErr := r.refreshSummaries(ctx, t, layout, plan.Runs, len(commits) > 0, rep)
	return rep, errors.Join(recErr, execErr, flushErr, redrawErr)
}

// ErrPlan wraps the errors of a commit that does not plan (invalid
// experiment files): trying again changes nothing until a new commit.
var ErrPlan = errors.New("cannot plan commit")

// plan loads and plans the snapshot (in local mode unless r.Plan says
// otherwise).
func (r *Reconciler) plan(t Target) (*render.PlanResult, error) {
	opts := r.Plan
	if opts.Mode == "" {
		opts.Mode = v1alpha1.ModeLocal
	}
	plan, err := render.Plan(t.Tree, opts)
	if err != nil {
		err = fmt.Errorf("%w %s: %w", ErrPlan, contract.ShortID(t.Commit), err)
		if r.RunValidExperiments && plan != nil {
			// With RunValidExperiments a commit whose invalid files leave
			// valid experiments returns their plan with the error.
			return plan, err
		}
		return nil, err
	}
	return plan, nil
}

type workList struct {
	recover []recovered
	execute []render.Run
	// known are the verified folders of the branch, for the summaries.
	known map[string]results.Run
}

// classify splits the plan into done runs (a verified folder in the
// branch), runs whose result is in the run cache (recovered: attested and
// committed for this target without running), and runs to execute.
func (r *Reconciler) classify(ctx context.Context, t Target, layout results.Layout, runs []render.Run, rep *Report) (workList, error) {
	w := workList{known: map[string]results.Run{}}
	present := map[string]map[string]bool{}
	for _, run := range runs {
		dir := layout.RunDir(run.Experiment, run.ID)
		names, ok := present[run.Experiment]
		if !ok {
			var err error
			if names, err = runFolderNames(t.resultsTree(), layout.ExperimentDir(run.Experiment)); err != nil {
				return w, err
			}
			present[run.Experiment] = names
		}
		state, known, err := r.folderState(t.resultsTree(), names, dir, run)
		if err != nil {
			return w, err
		}
		switch state {
		case folderDone:
			rep.Done++
			if known.Record != nil && known.Record.Status == contract.Succeeded {
				rep.DoneSucceeded++
			} else {
				rep.DoneFailed++
			}
			w.known[dir] = known
			continue
		case folderUntrusted:
			rep.Untrusted = append(rep.Untrusted, dir)
		}
		if res, ok, err := runner.Cached(ctx, r.Store, run.Contract); err == nil && ok {
			w.recover = append(w.recover, recovered{run: run, res: res})
			continue
		}
		w.execute = append(w.execute, run)
	}
	return w, nil
}

// CancelExcept cancels the in-flight runs of target key (see Target.key)
// whose IDs are not in keep: a new commit edited or deleted their
// experiment. It returns how many it cancelled.
func (r *Reconciler) CancelExcept(key string, keep map[string]bool) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for id, cancel := range r.inflight[key] {
		if !keep[id] {
			cancel(ErrRunObsolete)
			n++
		}
	}
	return n
}

// InFlight lists the run IDs of target key executing now, sorted.
func (r *Reconciler) InFlight(key string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.inflight[key]))
	for id := range r.inflight[key] {
		out = append(out, id)
	}
	sort.Strings(out)
	return out
}

func (r *Reconciler) track(key, id string, cancel context.CancelCauseFunc) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.inflight == nil {
		r.inflight = map[string]map[string]context.CancelCauseFunc{}
	}
	if r.inflight[key] == nil {
		r.inflight[key] = map[string]context.CancelCauseFunc{}
	}
	r.inflight[key][id] = cancel
}

func (r *Reconciler) untrack(key, id string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	delete(r.inflight[key], id)
	if len(r.inflight[key]) == 0 {
		delete(r.inflight, key)
	}
}

// TargetKey names the runs of one ref of one repository, for CancelExcept.
func TargetKey(repository, ref string) string { return repository + " " + ref }

func (r *Reconciler) batchInterval() time.Duration {
	if r.BatchInterval > 0 {
		return r.BatchInterval
	}
	return 10 * time.Second
}
