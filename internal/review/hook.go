package review

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/tree"
)

// Hook connects one repository's reconciles to a Reviewer: the engine's
// events (a commit planned, a run finished) become pending statuses with
// counts, a ref's finished reconcile becomes the final report. `expsync
// serve` keeps one per repository that names a forge, the controller one
// per ExperimentRepository with spec.forge: the same code posts the same
// statuses and comment in both.
type Hook struct {
	rv *Reviewer
	mu sync.Mutex
	// progress counts each commit's runs (key: ref and commit).
	progress map[string]*Progress
}

// NewHook starts the Reviewer of the repository src reads, for the
// reconciles of engine: the diff trusts the engine's keys (read at each
// report: they may still be decrypting) and plans with its planning
// options (a run ID depends on the mode: planned otherwise, every base and
// head run would look pending). Close it.
func NewHook(engine *reconcile.Reconciler, src *gitsource.Source, o Options) *Hook {
	o.TrustedKeys, o.Plan = engine.TrustedKeys, engine.Plan
	return &Hook{rv: New(o, SourceTrees(src)), progress: map[string]*Progress{}}
}

// SourceTrees reads a repository's commits through src; a ref that does
// not exist (a results branch before its first commit) is ErrNoResultsYet.
func SourceTrees(src *gitsource.Source) Trees {
	return func(ctx context.Context, ref, commit string) (tree.Reader, func(), error) {
		snap, err := src.Snapshot(ctx, ref, commit)
		if errors.Is(err, gitsource.ErrRefNotFound) {
			return nil, nil, fmt.Errorf("%w: %w", ErrNoResultsYet, err)
		}
		if err != nil {
			return nil, nil, err
		}
		return snap, func() { snap.Close() }, nil
	}
}

// pullRequest names the pull request of a ref, if it is one.
func pullRequest(ref, commit string, trusted bool, resultsTemplate string) (PullRequest, bool) {
	n, ok := reconcile.PullRequestNumber(ref)
	if !ok {
		return PullRequest{}, false
	}
	branch, _ := reconcile.ExpandResultsBranch(resultsTemplate, ref)
	return PullRequest{Number: n, Ref: ref, Commit: commit, Trusted: trusted, ResultsBranch: branch}, true
}

// Event turns a reconcile's progress on a pull-request ref into a pending
// status. It never blocks.
func (h *Hook) Event(e reconcile.Event) {
	if e.Kind != reconcile.EventPlanned && e.Kind != reconcile.EventRunFinished {
		return
	}
	pr, ok := pullRequest(e.Ref, e.Commit, false, "")
	if !ok {
		return
	}
	key := e.Ref + " " + e.Commit
	h.mu.Lock()
	p := h.progress[key]
	if p == nil || e.Kind == reconcile.EventPlanned {
		p = &Progress{}
		h.progress[key] = p
	}
	if e.Kind == reconcile.EventPlanned {
		p.Planned, p.Done = e.Planned, e.Done
	} else {
		p.Done++
		if e.Status != "Succeeded" {
			p.Failed++
		}
	}
	snapshot := *p
	h.mu.Unlock()
	h.rv.Progress(pr, snapshot)
}

// Finished reports the end of a ref's reconcile (reconcile.ServeOptions'
// and reconcile.WorkersOptions' Finished) when the ref is a pull request.
// It never blocks.
func (h *Hook) Finished(ch gitsource.RefChange, rep *reconcile.Report, err error) {
	pr, ok := pullRequest(ch.Ref, ch.New, ch.Trusted, ch.ResultsBranch)
	if !ok || ch.Deleted() {
		return
	}
	h.mu.Lock()
	delete(h.progress, ch.Ref+" "+ch.New)
	h.mu.Unlock()
	o := Outcome{Err: err, Refused: errors.Is(err, reconcile.ErrNotRunnable), PlanFailed: errors.Is(err, reconcile.ErrPlan)}
	if o.Refused {
		o.Reason = ch.Reason
	} else if err != nil {
		o.Reason = err.Error()
	}
	if rep != nil {
		o.Held, o.Cancelled = rep.Held, rep.Cancelled
	}
	h.rv.Finished(pr, o)
}

// Close stops the Reviewer; a post in progress gets until ctx ends.
func (h *Hook) Close(ctx context.Context) { h.rv.Close(ctx) }
