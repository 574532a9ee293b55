package reconcile

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// TestConcurrentBranchRecoversWhatTheOtherRan: two `expsync run`s (their
// own state folders, one store) reconcile two branches planning the same
// run at the same time. The second waits for the first's run lock and takes
// its result from the run cache: the run executes once, and the second's
// report says recovered, not executed (before, both claimed to have
// executed it).
func TestConcurrentBranchRecoversWhatTheOtherRan(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("slow", sleepyExperiment(marker, "1", 2))
	h.Git(h.Peer, "push", "-q", "origin", "HEAD:refs/heads/exp")

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	reconcileRef := func(stateDir, ref string) (*Report, error) {
		l, err := openLocal(ctx, localOptions{StoreDir: h.storeDir, StateDir: stateDir, Key: h.key, BatchInterval: time.Hour})
		if err != nil {
			return nil, err
		}
		defer l.Close(context.Background())
		src, err := l.Source(gitsource.Repository{
			URL: h.URL(), Auth: &gitsource.Auth{Username: gitUser, Password: gitPassword},
			URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
			Refs:      []gitsource.RefPolicy{{Pattern: filepath.Base(ref), Trusted: true}},
		})
		if err != nil {
			return nil, err
		}
		changes, err := src.Poll(ctx)
		if err != nil {
			return nil, err
		}
		for _, ch := range changes {
			if ch.Ref == ref {
				return l.ReconcileRef(ctx, src, ch)
			}
		}
		t.Errorf("%s not polled: %+v", ref, changes)
		return nil, nil
	}
	type outcome struct {
		rep *Report
		err error
	}
	first := make(chan outcome, 1)
	go func() {
		rep, err := reconcileRef(t.TempDir(), "refs/heads/main")
		first <- outcome{rep, err}
	}()
	deadline := time.Now().Add(time.Minute)
	for len(markerLines(t, marker)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the first run did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}
	second, err := reconcileRef(t.TempDir(), "refs/heads/exp")
	if err != nil {
		t.Fatal(err)
	}
	main := <-first
	if main.err != nil || main.rep.Executed != 1 || len(main.rep.Commits) != 1 {
		t.Errorf("main: %+v, %v; want 1 executed and committed", main.rep, main.err)
	}
	if second.Executed != 0 || second.Recovered != 1 || second.Succeeded != 1 || len(second.Commits) != 1 {
		t.Errorf("exp, run while main ran it: %+v; want 0 executed, 1 recovered from the run cache, committed", second)
	}
	if lines := markerLines(t, marker); len(lines) != 1 {
		t.Errorf("the run executed %d times, want once", len(lines))
	}
}
