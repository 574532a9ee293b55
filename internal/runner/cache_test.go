package runner

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
)

// TestMain lets the test binary act as a second expsync process.
func TestMain(m *testing.M) {
	if os.Getenv("EXPSYNC_RUNNER_HELPER") == "runcached" {
		os.Exit(helperRunCached())
	}
	os.Exit(m.Run())
}

func helperRunCached() int {
	var c contract.Contract
	data, err := os.ReadFile(os.Getenv("EXPSYNC_HELPER_CONTRACT"))
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	res, err := RunCached(context.Background(), c, Options{WorkRoot: os.Getenv("EXPSYNC_HELPER_WORK")})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	fmt.Printf("%s %v\n", res.Status, res.Cached)
	return 0
}

func TestRunCachedExecutesOnce(t *testing.T) {
	f := newFixture(t)
	counter := filepath.Join(t.TempDir(), "runs")
	c := shell(`echo x >> "$COUNTER"; echo out > o.txt`).env("COUNTER", counter).outputs("o.txt").build()
	first, err := RunCached(context.Background(), c, f.opts)
	if err != nil || first.Status != contract.Succeeded || first.Cached {
		t.Fatalf("first RunCached: %+v, %v", first, err)
	}
	second, err := RunCached(context.Background(), c, f.opts)
	if err != nil || !second.Cached {
		t.Fatalf("second RunCached: %+v, %v; want the cached result", second, err)
	}
	if second.Outputs[0].SHA256 != first.Outputs[0].SHA256 || !second.StartedAt.Equal(first.StartedAt) {
		t.Errorf("cached result differs from the stored one")
	}
	if data, _ := os.ReadFile(counter); string(data) != "x\n" {
		t.Errorf("command ran %d times, want once", strings.Count(string(data), "x"))
	}
}

func TestCachedFailureStandsUntilSchedulingChanges(t *testing.T) {
	f := newFixture(t)
	counter := filepath.Join(t.TempDir(), "runs")
	c := shell(`echo x >> "$COUNTER"; exit 4`).env("COUNTER", counter).build()
	for range 2 {
		if _, err := RunCached(context.Background(), c, f.opts); err != nil {
			t.Fatal(err)
		}
	}
	// Raising the timeout (a scheduling field, not in the run ID) retries it.
	c.Limits.Timeout = contract.Duration{Duration: time.Hour}
	res, err := RunCached(context.Background(), c, f.opts)
	if err != nil || res.Cached || res.Status != contract.Failed {
		t.Fatalf("after a scheduling change: %+v, %v", res, err)
	}
	if data, _ := os.ReadFile(counter); strings.Count(string(data), "x") != 2 {
		t.Errorf("command ran %d times, want 2 (once, then once after the change)", strings.Count(string(data), "x"))
	}
	// Cancelled and errored results (here: a secret that is not set) are
	// never cached.
	e := shell("true").secret("TOKEN", "unset", "key").build()
	if _, err := RunCached(context.Background(), e, f.opts); err != nil {
		t.Fatal(err)
	}
	if _, err := f.st.RunFile(context.Background(), e.RunID, ResultFile); err == nil {
		t.Errorf("an Error result was cached")
	}
}

// TestTwoProcessesExecuteOneRunOnce starts two real processes running the
// same contract against one store at the same time.
func TestTwoProcessesExecuteOneRunOnce(t *testing.T) {
	f := newFixture(t)
	counter := filepath.Join(t.TempDir(), "runs")
	c := shell(`echo x >> "$COUNTER"; sleep 0.3`).env("COUNTER", counter).build()
	c.Store = "file://" + f.st.Root()
	contractFile := filepath.Join(t.TempDir(), "contract.json")
	data, _ := json.Marshal(c)
	os.WriteFile(contractFile, data, 0o644)
	var cmds []*exec.Cmd
	var outs []*strings.Builder
	for range 2 {
		cmd := exec.Command(os.Args[0], "-test.run=^$")
		cmd.Env = append(os.Environ(), "EXPSYNC_RUNNER_HELPER=runcached", "EXPSYNC_HELPER_CONTRACT="+contractFile, "EXPSYNC_HELPER_WORK="+t.TempDir())
		out := &strings.Builder{}
		cmd.Stdout, cmd.Stderr = out, out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds, outs = append(cmds, cmd), append(outs, out)
	}
	for i, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatalf("helper %d: %v\n%s", i, err, outs[i])
		}
	}
	got := []string{strings.TrimSpace(outs[0].String()), strings.TrimSpace(outs[1].String())}
	if !(got[0] == "Succeeded false" && got[1] == "Succeeded true" || got[0] == "Succeeded true" && got[1] == "Succeeded false") {
		t.Errorf("helpers reported %q; want one execution and one cached result", got)
	}
	if data, _ := os.ReadFile(counter); string(data) != "x\n" {
		t.Errorf("command ran %d times across two processes, want once", strings.Count(string(data), "x"))
	}
	if _, err := LoadResult(context.Background(), f.st, c.RunID); err != nil {
		t.Errorf("result not in the run cache: %v", err)
	}
	var _ store.Store = f.st
}

func TestRunCachedCancelledWhileLockedElsewhere(t *testing.T) {
	f := newFixture(t)
	c := shell(`true`).build()
	unlock, err := f.st.LockRun(context.Background(), c.RunID)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	res, err := RunCached(ctx, c, f.opts)
	if err != nil || res.Status != contract.Cancelled {
		t.Errorf("RunCached = %+v, %v; want a Cancelled result", res, err)
	}
}

func TestCorruptCachedResultRunsAgain(t *testing.T) {
	f := newFixture(t)
	c := shell(`true`).build()
	if err := f.st.PutRunFile(context.Background(), c.RunID, ResultFile, []byte(`{"runID":"`)); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadResult(context.Background(), f.st, c.RunID); err == nil || !strings.Contains(err.Error(), "corrupt") {
		t.Errorf("LoadResult of a truncated result = %v", err)
	}
	res, err := RunCached(context.Background(), c, f.opts)
	if err != nil || res.Cached || res.Status != contract.Succeeded {
		t.Errorf("RunCached over a truncated result = %+v, %v; want a new run", res, err)
	}
}
