package reconcile

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// A repository whose server accepts connections and never answers must not
// hold up the others: serve polls each repository on its own schedule.
func TestServeStalledRepositoryDelaysOnlyItself(t *testing.T) {
	h := newHarness(t)
	h.batch = 200 * time.Millisecond
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("runs", squareExperiment(marker, "1, 2"))

	// The stalled server: accepts, reads nothing, writes nothing.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var conns sync.WaitGroup
	stop := make(chan struct{})
	t.Cleanup(func() { close(stop); ln.Close(); conns.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			go func() { defer conns.Done(); <-stop; c.Close() }()
		}
	}()

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	// The stalled poll's limit is far above what the healthy repository's
	// results take even on a loaded machine (15-48 s in CI at load 40-70,
	// 23 s for the healthy one served alone side by side): a loop that
	// waited for the stalled poll first would take all of it, past the
	// three quarters allowed below, while a passing run ends as soon as
	// they land.
	const stallLimit = 2 * time.Minute
	stalled, err := l.Source(gitsource.Repository{
		URL:       "http://" + ln.Addr().String() + "/stalled.git",
		URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
		Refs:      []gitsource.RefPolicy{{Pattern: "main", Trusted: true}},
		Limits:    gitsource.Limits{Timeout: stallLimit, IdleTimeout: stallLimit},
	})
	if err != nil {
		t.Fatal(err)
	}
	healthy := h.source(l)

	done := make(chan error, 1)
	started := time.Now()
	go func() {
		// The stalled repository comes first, as it did in the sequential loop.
		done <- l.Serve(ctx, []*gitsource.Source{stalled, healthy}, ServeOptions{Interval: 200 * time.Millisecond})
	}()
	for {
		if entries, _ := os.ReadDir(filepath.Join(h.Clone(), "results", "square")); countDirs(entries) == 2 {
			break
		}
		if time.Since(started) > stallLimit {
			cancel()
			t.Fatalf("the healthy repository's results did not land before the stalled one's %s timeout", stallLimit)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if took := time.Since(started); took > stallLimit*3/4 {
		t.Errorf("results took %s: the stalled repository held the healthy one up", took)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Serve did not return after its context ended (a stalled poll must end with its context)")
	}
}

func countDirs(entries []os.DirEntry) int {
	n := 0
	for _, e := range entries {
		if e.IsDir() {
			n++
		}
	}
	return n
}
