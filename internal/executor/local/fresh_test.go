package local

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
)

// TestExecuteFreshRunsAgain: a reproduction executes a run the cache
// answers, beside a running execution of the same run (never joining it),
// and leaves the cached result the run's.
func TestExecuteFreshRunsAgain(t *testing.T) {
	h := newHarness(t, nil)
	counter := filepath.Join(t.TempDir(), "n")
	c := shellContract(`echo x >> "$C"; sleep 0.3; date +%s%N`, "C", counter)
	first := wait(t, mustSubmit(t, h, c))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	running := mustSubmit(t, h, c) // answered by the cache
	fresh, err := h.ex.ExecuteFresh(ctx, c)
	if err != nil {
		t.Fatal(err)
	}
	if res := wait(t, running); !res.Cached {
		t.Error("the run itself executed again")
	}
	if fresh.Cached || fresh.LogSHA256 == first.LogSHA256 {
		t.Errorf("the reproduction came from the cache (cached %v, same log %v)", fresh.Cached, fresh.LogSHA256 == first.LogSHA256)
	}
	if data, _ := os.ReadFile(counter); strings.Count(string(data), "x") != 2 {
		t.Errorf("ran %d times, want 2", strings.Count(string(data), "x"))
	}
	cached, err := runner.LoadResult(ctx, h.st, c.RunID)
	if err != nil || cached.LogSHA256 != first.LogSHA256 {
		t.Errorf("the run cache holds %v (%v), want the first execution's result", cached, err)
	}
}

// TestExecuteFreshBesideItsRun: a reproduction started while the run itself
// runs is an execution of its own.
func TestExecuteFreshBesideItsRun(t *testing.T) {
	h := newHarness(t, nil)
	counter := filepath.Join(t.TempDir(), "n")
	c := shellContract(`echo x >> "$C"; sleep 0.5`, "C", counter)
	job := mustSubmit(t, h, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := h.ex.ExecuteFresh(ctx, c); err != nil {
		t.Fatal(err)
	}
	wait(t, job)
	if data, _ := os.ReadFile(counter); strings.Count(string(data), "x") != 2 {
		t.Errorf("ran %d times, want 2 (the reproduction joined the run)", strings.Count(string(data), "x"))
	}
}

func mustSubmit(t *testing.T, h *harness, c contract.Contract) *Job {
	t.Helper()
	j, err := h.ex.Submit(c, nil)
	if err != nil {
		t.Fatal(err)
	}
	return j
}
