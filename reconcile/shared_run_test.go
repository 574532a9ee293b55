package reconcile

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// TestCancellingOneBranchKeepsAnotherBranchsRun: two branches planning one
// run share its execution. A new commit on one branch that drops the
// experiment cancels that branch's in-flight runs (as serve does); the
// other branch still plans the run, so it must run on and be committed
// there — before, the shared run was killed and the other branch recorded
// it as "not finished" and never tried again until its next commit.
func TestCancellingOneBranchKeepsAnotherBranchsRun(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("slow", sleepyExperiment(marker, "1", 2))
	h.Git(h.Peer, "push", "-q", "origin", "HEAD:refs/heads/exp")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	src, err := l.Source(gitsource.Repository{
		URL: h.URL(), Auth: &gitsource.Auth{Username: gitUser, Password: gitPassword},
		URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
		Refs:      []gitsource.RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "exp", Trusted: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	changes, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	type outcome struct {
		rep *Report
		err error
	}
	results := map[string]chan outcome{}
	for _, ch := range changes {
		done := make(chan outcome, 1)
		results[ch.Ref] = done
		go func() {
			rep, err := l.ReconcileRef(ctx, src, ch)
			done <- outcome{rep, err}
		}()
	}
	if len(results) != 2 {
		t.Fatalf("poll reported %d refs, want main and exp: %+v", len(results), changes)
	}
	mainKey := TargetKey(src.URL(), "refs/heads/main")
	deadline := time.Now().Add(time.Minute)
	// Both branches wait on the run once each Submitted it (InFlight is set
	// before a branch prepares the run's inputs, which on a loaded machine
	// can take longer than any fixed sleep).
	for len(markerLines(t, marker)) == 0 || len(l.Reconciler.InFlight(mainKey)) != 1 ||
		l.Executor.Waiters(l.Reconciler.InFlight(mainKey)[0]) != 2 {
		if time.Now().After(deadline) {
			t.Fatal("the run did not start with both branches waiting on it")
		}
		time.Sleep(20 * time.Millisecond)
	}

	if n := l.Reconciler.CancelExcept(mainKey, nil); n != 1 {
		t.Fatalf("cancelled %d runs of main, want 1", n)
	}
	mainOut, expOut := <-results["refs/heads/main"], <-results["refs/heads/exp"]
	if mainOut.err != nil || mainOut.rep.Cancelled != 1 || len(mainOut.rep.Commits) != 0 {
		t.Errorf("main, whose run was cancelled: %+v, %v; want 1 not finished, no commit", mainOut.rep, mainOut.err)
	}
	if expOut.err != nil || expOut.rep.Executed != 1 || expOut.rep.Succeeded != 1 || expOut.rep.Cancelled != 0 || len(expOut.rep.Commits) != 1 {
		t.Errorf("exp, which still plans the run: %+v, %v; want it executed, succeeded and committed", expOut.rep, expOut.err)
	}
	if lines := markerLines(t, marker); len(lines) != 1 {
		t.Errorf("the run executed %d times, want once", len(lines))
	}
}
