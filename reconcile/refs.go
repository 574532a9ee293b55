package reconcile

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/tree"
)

// ErrNotRunnable is returned for a commit that may not run (an untrusted
// ref whose commits are not signed by an allowed key).
var ErrNotRunnable = errors.New("commit may not run")

// RefReconciler reconciles the commits polls report: it snapshots the
// commit, finds the results branch (the ref itself, or its resultsBranch
// template's) and runs Reconciler.Reconcile with a pusher to that branch.
// `expsync run`, `serve` and the controller all reconcile refs through it.
type RefReconciler struct {
	Reconciler *Reconciler
	// Author of results commits (default expsync <expsync@localhost>).
	Author gitsource.Signature
	// CommitSigner signs results commits (optional).
	CommitSigner gitsource.Signer
}

// ReconcileRef reconciles the commit a poll reported for one ref.
func (d RefReconciler) ReconcileRef(ctx context.Context, src *gitsource.Source, ch gitsource.RefChange) (*Report, error) {
	if ch.Deleted() {
		return &Report{}, nil
	}
	if !ch.Runnable {
		return &Report{Commit: ch.New}, fmt.Errorf("%w: %s at %s: %s", ErrNotRunnable, ch.Ref, contract.ShortID(ch.New), ch.Reason)
	}
	branch, err := ExpandResultsBranch(ch.ResultsBranch, ch.Ref)
	if err != nil {
		return &Report{Commit: ch.New}, err
	}
	startFrom := ""
	if branch == "" {
		if !strings.HasPrefix(ch.Ref, "refs/heads/") {
			return &Report{Commit: ch.New}, fmt.Errorf("%s is not a branch and has no results branch configured", ch.Ref)
		}
		branch = strings.TrimPrefix(ch.Ref, "refs/heads/")
	} else if "refs/heads/"+branch != ch.Ref {
		startFrom = ch.Ref
	}
	snap, err := src.Snapshot(ctx, ch.Ref, ch.New)
	if err != nil {
		return &Report{Commit: ch.New}, err
	}
	defer snap.Close()
	var resultsTree tree.Reader
	separate := "refs/heads/"+branch != ch.Ref
	if separate {
		// Done runs of this ref are in its results branch.
		rs, err := src.Snapshot(ctx, "refs/heads/"+branch, "")
		switch {
		case err == nil:
			defer rs.Close()
			resultsTree = rs
		case errors.Is(err, gitsource.ErrRefNotFound):
			// No results branch yet: nothing is done.
		default:
			return &Report{Commit: ch.New}, fmt.Errorf("read results branch %s: %w", branch, err)
		}
	}
	author := d.Author
	if author.Name == "" {
		author = gitsource.Signature{Name: "expsync", Email: "expsync@localhost"}
	}
	// Only a results branch that is not there yet may be created.
	mayCreate := new(atomic.Bool)
	mayCreate.Store(separate && resultsTree == nil)
	return d.Reconciler.Reconcile(ctx, Target{
		Repository: src.URL(), Ref: ch.Ref, Commit: ch.New, Tree: snap, Results: resultsTree, SeparateResults: separate,
		Pusher: GitPusher{Source: src, Branch: branch, StartFrom: startFrom, Author: author, Signer: d.CommitSigner,
			MayCreate: mayCreate, Contains: ch.New, ContainsRef: containsRef(separate, ch.Ref)},
	})
}

// containsRef is the ref whose head must contain the commit that ran: the
// pull request's own ref when results go to a results branch, else the
// branch itself ("").
func containsRef(separate bool, ref string) string {
	if separate {
		return ref
	}
	return ""
}
