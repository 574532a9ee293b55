package main

import (
	"context"
	"sync"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/internal/review"
	"github.com/expsync/expsync/reconcile"
)

// reviewers routes serve's events and reconcile outcomes to the review
// hook of their repository (by URL): statuses and one comment per pull
// request for the repositories that name a forge. The hook itself is
// internal/review's, the one the controller uses.
type reviewers struct {
	mu     sync.Mutex
	byRepo map[string]*review.Hook
}

func newReviewers() *reviewers {
	return &reviewers{byRepo: map[string]*review.Hook{}}
}

// add starts the review hook of one repository.
func (rs *reviewers) add(r *reconcile.Reconciler, src *gitsource.Source, client forge.Client, statusContext string, logf func(string, ...any)) {
	h := review.NewHook(r, src, review.Options{Forge: client, Context: statusContext, Log: func(format string, args ...any) {
		logf("%s: "+format, append([]any{src.URL()}, args...)...)
	}})
	rs.mu.Lock()
	rs.byRepo[src.URL()] = h
	rs.mu.Unlock()
}

func (rs *reviewers) hook(repo string) *review.Hook {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return rs.byRepo[repo]
}

// event turns a reconcile's progress into pending statuses.
func (rs *reviewers) event(e reconcile.Event) {
	if h := rs.hook(e.Repository); h != nil {
		h.Event(e)
	}
}

// finished reports a reconcile's outcome.
func (rs *reviewers) finished(src *gitsource.Source, ch gitsource.RefChange, rep *reconcile.Report, err error) {
	if h := rs.hook(src.URL()); h != nil {
		h.Finished(ch, rep, err)
	}
}

func (rs *reviewers) close(ctx context.Context) {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	for _, h := range rs.byRepo {
		h.Close(ctx)
	}
}
