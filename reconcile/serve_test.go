package reconcile

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// sleepyExperiment is a sweep whose runs record their x, sleep, then write
// an output.
func sleepyExperiment(marker, xs string, sleep int) map[string]string {
	files := squareExperiment(marker, xs)
	files["code/square/square.sh"] = fmt.Sprintf(`set -e
echo "$1" >> "$MARKER"
sleep %d
mkdir -p out
echo $(($1 * $1)) > out/result.txt
printf '{"square": %%d}\n' $(($1 * $1)) > out/metrics.json
`, sleep)
	return files
}

// TestServeInProcess runs Serve against the harness' server: it reconciles
// a new commit, cancels the runs a newer commit no longer plans, commits
// the new commit's results, and returns when its context ends. Run it with
// -race: it exercises the poll loop, the per-ref workers and the
// cancellation from one goroutine into another's runs.
func TestServeInProcess(t *testing.T) {
	h := newHarness(t)
	h.batch = 200 * time.Millisecond
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("slow", sleepyExperiment(marker, "1, 2", 30))

	ctx, cancel := context.WithCancel(context.Background())
	l := h.open(ctx)
	src := h.source(l)
	var logMu sync.Mutex
	var log strings.Builder
	done := make(chan error, 1)
	go func() {
		done <- l.Serve(ctx, []*gitsource.Source{src}, ServeOptions{Interval: 200 * time.Millisecond, Logger: textLogger(&logMu, &log)})
	}()
	logged := func() string { logMu.Lock(); defer logMu.Unlock(); return log.String() }
	wait := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				cancel()
				t.Fatalf("timed out waiting for %s; log:\n%s", what, logged())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	wait("2 slow runs to start", func() bool { return len(markerLines(t, marker)) == 2 })

	// The experiment's command changes: both in-flight runs are obsolete.
	edited := h.Commit("fast", sleepyExperiment(marker, "1, 2", 0))
	wait("the new commit's results", func() bool {
		if h.Head() == edited {
			return false
		}
		clone := h.Clone()
		dirs := runFolders(t, clone, "square")
		return len(dirs) == 2 && strings.Contains(string(mustRead(t, filepath.Join(dirs[0], "run.json"))), edited)
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(60 * time.Second):
		t.Fatal("Serve did not return after its context ended")
	}
	l.Close(context.Background())
	if !strings.Contains(logged(), "in-flight runs cancelled") || !strings.Contains(logged(), "cancelled=2") {
		t.Errorf("no cancellation logged:\n%s", logged())
	}
	for _, dir := range runFolders(t, h.Clone(), "square") {
		if err := h.verifyFolder(dir); err != nil {
			t.Errorf("verify: %v", err)
		}
		if strings.Contains(string(mustRead(t, filepath.Join(dir, "run.json"))), `"status": "Cancelled"`) {
			t.Errorf("a cancelled run was committed")
		}
	}
}

func mustRead(t testing.TB, file string) []byte {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
