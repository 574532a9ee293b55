package main

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/internal/review"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/tree"
)

// reviewers posts statuses and comments for the pull-request refs of the
// repositories that name a forge. Events and reconcile outcomes are routed
// to them by repository URL.
type reviewers struct {
	mu     sync.Mutex
	byRepo map[string]*review.Reviewer
	// progress counts each target's runs (key: repository and ref).
	progress map[string]*review.Progress
}

func newReviewers() *reviewers {
	return &reviewers{byRepo: map[string]*review.Reviewer{}, progress: map[string]*review.Progress{}}
}

// add starts the reviewer of one repository.
func (rs *reviewers) add(r *reconcile.Reconciler, src *gitsource.Source, client forge.Client, statusContext string, logf func(string, ...any)) error {
	keys, err := r.TrustedKeys()
	if err != nil {
		return err
	}
	trees := func(ctx context.Context, ref, commit string) (tree.Reader, func(), error) {
		snap, err := src.Snapshot(ctx, ref, commit)
		if errors.Is(err, gitsource.ErrRefNotFound) {
			return nil, nil, fmt.Errorf("%w: %w", review.ErrNoResultsYet, err)
		}
		if err != nil {
			return nil, nil, err
		}
		return snap, func() { snap.Close() }, nil
	}
	rv := review.New(review.Options{Forge: client, Context: statusContext, Keys: keys, Log: func(format string, args ...any) {
		logf("%s: "+format, append([]any{src.URL()}, args...)...)
	}}, trees)
	rs.mu.Lock()
	rs.byRepo[src.URL()] = rv
	rs.mu.Unlock()
	return nil
}

// pullRequest names the pull request of a ref, if it is one whose
// repository has a reviewer.
func (rs *reviewers) pullRequest(repo, ref, commit string, trusted bool, resultsTemplate string) (*review.Reviewer, review.PullRequest, bool) {
	rs.mu.Lock()
	rv := rs.byRepo[repo]
	rs.mu.Unlock()
	n, ok := reconcile.PullRequestNumber(ref)
	if rv == nil || !ok {
		return nil, review.PullRequest{}, false
	}
	branch, _ := reconcile.ExpandResultsBranch(resultsTemplate, ref)
	return rv, review.PullRequest{Number: n, Ref: ref, Commit: commit, Trusted: trusted, ResultsBranch: branch}, true
}

// event turns a reconcile's progress into pending statuses.
func (rs *reviewers) event(e reconcile.Event) {
	if e.Kind != reconcile.EventPlanned && e.Kind != reconcile.EventRunFinished {
		return
	}
	rv, pr, ok := rs.pullRequest(e.Repository, e.Ref, e.Commit, false, "")
	if !ok {
		return
	}
	key := e.Repository + " " + e.Ref + " " + e.Commit
	rs.mu.Lock()
	p := rs.progress[key]
	if p == nil || e.Kind == reconcile.EventPlanned {
		p = &review.Progress{}
		rs.progress[key] = p
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
	rs.mu.Unlock()
	rv.Progress(pr, snapshot)
}

// finished reports a reconcile's outcome.
func (rs *reviewers) finished(src *gitsource.Source, ch gitsource.RefChange, rep *reconcile.Report, err error) {
	rv, pr, ok := rs.pullRequest(src.URL(), ch.Ref, ch.New, ch.Trusted, ch.ResultsBranch)
	if !ok || ch.Deleted() {
		return
	}
	rs.mu.Lock()
	delete(rs.progress, src.URL()+" "+ch.Ref+" "+ch.New)
	rs.mu.Unlock()
	o := review.Outcome{Err: err, Refused: errors.Is(err, reconcile.ErrNotRunnable), PlanFailed: errors.Is(err, reconcile.ErrPlan)}
	if o.Refused {
		o.Reason = ch.Reason
	} else if err != nil {
		o.Reason = err.Error()
	}
	if rep != nil {
		o.Held, o.Cancelled = rep.Held, rep.Cancelled
	}
	rv.Finished(pr, o)
}

func (rs *reviewers) close(ctx context.Context) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, rv := range rs.byRepo {
		rv.Close(ctx)
	}
}
