package reconcile

import (
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// hopelessExperiments: "big" requests more CPUs than any test machine
// has (this machine's problem: held, not committed), "missing" reads a
// URL answering 404 (the run's problem: its Failed result is committed).
func hopelessExperiments(cpu, url string) map[string]string {
	return map[string]string{
		"experiments/big.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: big
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out; echo ran > out/result.txt"]
  outputs: [out/result.txt]
  resources: {cpu: "` + cpu + `"}
`,
		"experiments/missing.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: missing
spec:
  image: host
  command: ["sh", "-c", "cat inputs/data"]
  inputs:
    - {name: data, uri: "` + url + `", sha256: ` + strings.Repeat("ab", 32) + `}
  resources: {cpu: 100m}
`,
	}
}

// TestServeHoldsAHopelessRun: serve no longer retries a run that fails the
// same way every time at every poll, forever. A run requesting more CPUs
// than the executor has is held and tried again after 1, 2, 4... polls,
// logged once; a run whose input URL answers 404 is committed as Failed
// and its URL asked once. A commit that fixes the request runs.
func TestServeHoldsAHopelessRun(t *testing.T) {
	h := newHarness(t)
	h.batch = 100 * time.Millisecond
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		http.NotFound(w, r)
	}))
	defer srv.Close()
	h.Commit("hopeless", hopelessExperiments("64", srv.URL+"/gone.csv"))

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	src := h.source(l)
	var logMu sync.Mutex
	var log strings.Builder
	logged := func() string { logMu.Lock(); defer logMu.Unlock(); return log.String() }
	const interval = 50 * time.Millisecond
	done := make(chan error, 1)
	// Attempts are counted against every poll since Serve started: the
	// backoff began with the first reconcile, however long the wait for
	// the 404 run's result took on a loaded machine.
	serveStarted := time.Now()
	go func() {
		done <- l.Serve(ctx, []*gitsource.Source{src}, ServeOptions{Interval: interval, Logger: textLogger(&logMu, &log)})
	}()
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("timed out waiting for %s; log:\n%s", what, logged())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	wait("the 404 run's result", func() bool { return len(runFoldersIfAny(h.Clone(), "missing")) == 1 })
	// Some 60 polls go by.
	time.Sleep(60 * interval)
	polls := int(time.Since(serveStarted) / interval)

	if n := strings.Count(logged(), "requests 64 CPUs"); n != 1 {
		t.Errorf("the refusal was logged %d times in ~%d polls, want once (per change); log:\n%s", n, polls, logged())
	}
	held := l.Reconciler.Held()
	if len(held) != 1 || held[0].Experiment != "big" || !strings.Contains(held[0].Reason, "requests 64 CPUs") {
		t.Errorf("held runs %+v, want big's run, refused for its CPU request", held)
	} else if max := 3 + bitLen(polls); held[0].Failures < 2 || held[0].Failures > max {
		// 1, 2, 4, 8, 16, 32 polls: about log2(polls)+2 attempts, never one per poll.
		t.Errorf("big attempted %d times in ~%d polls, want 2..%d (backoff)", held[0].Failures, polls, max)
	}
	if !strings.Contains(logged(), "lower resources.cpu") || !strings.Contains(logged(), "held (not committed)") {
		t.Errorf("the log does not say the run is held and what to do:\n%s", logged())
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the 404 URL was asked %d times, want once (its result is committed)", n)
	}
	clone := h.Clone()
	if dirs := runFoldersIfAny(clone, "big"); len(dirs) != 0 {
		t.Errorf("the held run was committed: %v", dirs)
	}
	missing := runFoldersIfAny(clone, "missing")
	if len(missing) != 1 {
		t.Fatalf("missing's folders: %v", missing)
	}
	if rec := readRecord(t, missing[0]); rec.Status != "Failed" || !strings.Contains(rec.Reason, "404") || !strings.Contains(rec.Reason, `input "data"`) {
		t.Errorf("missing recorded %s: %q, want Failed naming the input and the 404", rec.Status, rec.Reason)
	}
	if err := h.verifyFolder(missing[0]); err != nil {
		t.Errorf("verify: %v", err)
	}

	// The fix: a request that fits.
	h.Pull()
	h.Commit("fits", hopelessExperiments("100m", srv.URL+"/gone.csv"))
	wait("the fixed run's result", func() bool { return len(runFoldersIfAny(h.Clone(), "big")) == 1 })
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	big := runFoldersIfAny(h.Clone(), "big")
	if rec := readRecord(t, big[0]); rec.Status != "Succeeded" {
		t.Errorf("the fixed run: %s %q", rec.Status, rec.Reason)
	}
	if n := hits.Load(); n != 1 {
		t.Errorf("the 404 URL was asked %d times in all, want once", n)
	}
	if testing.Verbose() {
		t.Logf("log:\n%s", logged())
	}
}

func bitLen(n int) int {
	b := 0
	for ; n > 0; n >>= 1 {
		b++
	}
	return b
}

// runFoldersIfAny is runFolders for an experiment that may have none yet.
func runFoldersIfAny(dir, experiment string) []string {
	files, _ := filepath.Glob(filepath.Join(dir, "results", experiment, "*", "run.json"))
	var out []string
	for _, f := range files {
		out = append(out, filepath.Dir(f))
	}
	return out
}
