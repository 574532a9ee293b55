package local

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
)

func randomRunID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func shellContract(script string, env ...string) contract.Contract {
	c := contract.Contract{Version: contract.Version, RunID: randomRunID(), Experiment: "t", Image: contract.HostImage,
		Command: []string{"sh", "-c", script}}
	for i := 0; i+1 < len(env); i += 2 {
		c.Env = append(c.Env, contract.EnvVar{Name: env[i], Value: env[i+1]})
	}
	return c
}

type harness struct {
	st     *store.Local
	state  string
	ex     *Executor
	mu     sync.Mutex
	events []Event
}

func newHarness(t *testing.T, configure func(*Options)) *harness {
	t.Helper()
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	h := &harness{st: st, state: t.TempDir()}
	opts := Options{Store: st, StateDir: h.state, CPUs: 2, MemoryBytes: 8 << 30,
		Runner:  runner.Options{WorkRoot: t.TempDir(), KillGrace: 200 * time.Millisecond, Backoff: time.Millisecond},
		OnEvent: func(e Event) { h.mu.Lock(); h.events = append(h.events, e); h.mu.Unlock() }}
	if configure != nil {
		configure(&opts)
	}
	ex, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	h.ex = ex
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		ex.Shutdown(ctx)
	})
	return h
}

func wait(t *testing.T, j *Job) *contract.Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	res, err := j.Wait(ctx)
	if err != nil {
		t.Fatalf("run %s: %v", j.RunID, err)
	}
	return res
}

// maxOverlap reads "start <ns>" / "end <ns>" lines the runs wrote and
// returns the largest number of runs alive at once, as the processes saw it.
func maxOverlap(t *testing.T, dir string) int {
	t.Helper()
	type ev struct {
		at    int64
		delta int
	}
	var evs []ev
	files, _ := os.ReadDir(dir)
	for _, f := range files {
		fh, err := os.Open(filepath.Join(dir, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			kind, at, _ := strings.Cut(sc.Text(), " ")
			n, _ := strconv.ParseInt(at, 10, 64)
			d := 1
			if kind == "end" {
				d = -1
			}
			evs = append(evs, ev{n, d})
		}
		fh.Close()
	}
	sort.Slice(evs, func(i, j int) bool {
		if evs[i].at == evs[j].at {
			return evs[i].delta < evs[j].delta
		}
		return evs[i].at < evs[j].at
	})
	cur, peak := 0, 0
	for _, e := range evs {
		cur += e.delta
		peak = max(peak, cur)
	}
	return peak
}

const timedScript = `echo "start $(date +%s%N)" > "$DIR/$EXPSYNC_RUN_ID"; sleep 0.2; echo "end $(date +%s%N)" >> "$DIR/$EXPSYNC_RUN_ID"`

func TestAdmissionNeverExceedsCapacity(t *testing.T) {
	for _, tc := range []struct {
		name        string
		configure   func(*Options)
		cpu, memory string
		want        int
	}{
		{"cpu: 2 cores, 1 core each", nil, "1", "", 2},
		{"cpu: 2 cores, 500m each", nil, "500m", "", 4},
		{"memory: 1Gi, 600Mi each", func(o *Options) { o.MemoryBytes = 1 << 30 }, "100m", "600Mi", 1},
		{"max concurrency 3", func(o *Options) { o.CPUs = 100; o.MaxConcurrent = 3 }, "1", "", 3},
		{"gpus: 2, 1 each", func(o *Options) { o.CPUs = 100; o.GPUs = 2 }, "1", "gpu", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.configure)
			dir := t.TempDir()
			var jobs []*Job
			for range 8 {
				c := shellContract(timedScript, "DIR", dir)
				c.Limits.CPU, c.Limits.Memory = tc.cpu, tc.memory
				if tc.memory == "gpu" {
					c.Limits.Memory, c.Limits.GPU = "", 1
				}
				j, err := h.ex.Submit(c, nil)
				if err != nil {
					t.Fatal(err)
				}
				jobs = append(jobs, j)
			}
			for _, j := range jobs {
				if res := wait(t, j); res.Status != contract.Succeeded {
					t.Fatalf("status %s: %s", res.Status, res.Error)
				}
			}
			if got := maxOverlap(t, dir); got > tc.want || got < tc.want-1 {
				t.Errorf("%d runs overlapped, want %d (at most, and close to it)", got, tc.want)
			}
			peak := 0
			for _, e := range h.events {
				peak = max(peak, e.Counts.Running)
			}
			if peak > tc.want {
				t.Errorf("executor counted %d running, capacity is %d", peak, tc.want)
			}
			last := h.events[len(h.events)-1].Counts
			if last.Finished != 8 || last.Succeeded != 8 || last.Queued != 0 || last.Running != 0 {
				t.Errorf("final counts %+v", last)
			}
		})
	}
}

func TestSubmitRefusesWhatCannotFit(t *testing.T) {
	h := newHarness(t, nil)
	c := shellContract("true")
	c.Limits.CPU = "64"
	if _, err := h.ex.Submit(c, nil); err == nil || !strings.Contains(err.Error(), "requests 64 CPUs but this executor has 2") {
		t.Errorf("Submit = %v", err)
	}
	c.Limits.CPU, c.Limits.GPU = "1", 1
	if _, err := h.ex.Submit(c, nil); err == nil || !strings.Contains(err.Error(), "requests 1 GPUs but this executor has 0") {
		t.Errorf("Submit = %v", err)
	}
	c.Limits.GPU = 0
	c.Limits.CPU = "lots"
	if _, err := h.ex.Submit(c, nil); err == nil || !strings.Contains(err.Error(), `cpu request "lots"`) {
		t.Errorf("Submit = %v", err)
	}
}

func TestSubmitSameRunTwiceRunsOnce(t *testing.T) {
	h := newHarness(t, nil)
	counter := filepath.Join(t.TempDir(), "n")
	c := shellContract(`echo x >> "$C"; sleep 0.1`, "C", counter)
	a, _ := h.ex.Submit(c, nil)
	b, _ := h.ex.Submit(c, nil)
	wait(t, a)
	wait(t, b)
	// After it finished, the run cache answers.
	again, _ := h.ex.Submit(c, nil)
	if res := wait(t, again); !res.Cached {
		t.Errorf("resubmitting a finished run executed it again")
	}
	if data, _ := os.ReadFile(counter); string(data) != "x\n" {
		t.Errorf("ran %d times, want once", strings.Count(string(data), "x"))
	}
}

func TestCancel(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.CPUs = 1 })
	pidFile := filepath.Join(t.TempDir(), "pid")
	running, _ := h.ex.Submit(shellContract(`sleep 300 & echo $! > "$P"; wait`, "P", pidFile), nil)
	pid := waitPID(t, pidFile)
	queued, _ := h.ex.Submit(shellContract(`true`), nil) // waits for the only core
	if !h.ex.Cancel(queued.RunID) || !h.ex.Cancel(running.RunID) {
		t.Fatalf("Cancel did not find the runs")
	}
	if res := wait(t, queued); res.Status != contract.Cancelled {
		t.Errorf("queued run: %s", res.Status)
	}
	if res := wait(t, running); res.Status != contract.Cancelled {
		t.Errorf("running run: %s", res.Status)
	}
	if !waitGone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("cancelled run's process %d still alive", pid)
	}
	if h.ex.Cancel(running.RunID) {
		t.Errorf("Cancel of a finished run reported true")
	}
	if fi, err := os.Stat(filepath.Join(h.state, "journal.jsonl")); err != nil || fi.Size() != 0 {
		t.Errorf("journal not empty after the runs ended (%v)", err)
	}
}

// TestAbandonEndsARunOnlyWhenNoOneWaits: two Submits of one run (two
// branches planning it) share one job; the first to abandon it leaves it
// running for the other, the last one cancels it.
func TestAbandonEndsARunOnlyWhenNoOneWaits(t *testing.T) {
	h := newHarness(t, nil)
	dir := t.TempDir()
	c := shellContract(`echo $$ > "$D/pid"; read _ < "$D/go"`, "D", dir)
	if err := syscall.Mkfifo(filepath.Join(dir, "go"), 0o600); err != nil {
		t.Fatal(err)
	}
	first, _ := h.ex.Submit(c, nil)
	second, _ := h.ex.Submit(c, nil)
	if first != second {
		t.Fatal("two Submits of one run made two jobs")
	}
	waitPID(t, filepath.Join(dir, "pid"))
	if n := h.ex.Waiters(c.RunID); n != 2 {
		t.Errorf("Waiters = %d with two Submits, want 2", n)
	}
	if !h.ex.Abandon(first) {
		t.Fatal("Abandon by the first waiter reported the run ended, with a second waiter")
	}
	if n := h.ex.Waiters(c.RunID); n != 1 {
		t.Errorf("Waiters = %d after one Abandon, want 1", n)
	}
	if err := os.WriteFile(filepath.Join(dir, "go"), []byte("go\n"), 0o600); err != nil { // let it finish
		t.Fatal(err)
	}
	if res := wait(t, second); res.Status != contract.Succeeded {
		t.Errorf("the second waiter's run: %s (%s), want it to go on and succeed", res.Status, res.Error)
	}
	if n := h.ex.Waiters(c.RunID); n != 0 {
		t.Errorf("Waiters = %d after the run ended, want 0", n)
	}

	c = shellContract(`echo $$ > "$P"; exec sleep 300`, "P", filepath.Join(dir, "pid2"))
	first, _ = h.ex.Submit(c, nil)
	second, _ = h.ex.Submit(c, nil)
	pid := waitPID(t, filepath.Join(dir, "pid2"))
	if !h.ex.Abandon(first) || h.ex.Abandon(second) {
		t.Fatal("Abandon: want the run to go on after the first, end after the last")
	}
	if res := wait(t, second); res.Status != contract.Cancelled {
		t.Errorf("run abandoned by every waiter: %s, want Cancelled", res.Status)
	}
	if !waitGone(pid) {
		syscall.Kill(pid, syscall.SIGKILL)
		t.Errorf("abandoned run's process %d still alive", pid)
	}
}

// TestSubmitWhileACancelledRunEndsRunsItAgain: a run cancelled for one
// caller takes up to the kill grace to end; a Submit of the same run in
// that time (another branch planning it, a commit reverting an edit) must
// get a run of its own once the old one ended, not join the dying one and
// inherit its Cancelled.
func TestSubmitWhileACancelledRunEndsRunsItAgain(t *testing.T) {
	h := newHarness(t, nil) // KillGrace 200ms
	dir := t.TempDir()
	c := shellContract(`trap '' TERM; echo $$ >> "$D/pids"; [ -e "$D/cancelled" ] && exit 0; sleep 300 & wait; sleep 300`, "D", dir)
	old, _ := h.ex.Submit(c, nil)
	waitPID(t, filepath.Join(dir, "pids"))
	if err := os.WriteFile(filepath.Join(dir, "cancelled"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if !h.ex.Cancel(c.RunID) {
		t.Fatal("Cancel did not find the run")
	}
	again, err := h.ex.Submit(c, nil) // the old process ignores SIGTERM for the grace
	if err != nil {
		t.Fatal(err)
	}
	if res := wait(t, old); res.Status != contract.Cancelled {
		t.Errorf("cancelled run: %s", res.Status)
	}
	if res := wait(t, again); res.Status != contract.Succeeded {
		t.Errorf("run submitted while the cancelled one ended: %s (%s), want a run of its own that succeeds", res.Status, res.Error)
	}
}

func TestShutdown(t *testing.T) {
	t.Run("lets running runs finish", func(t *testing.T) {
		h := newHarness(t, func(o *Options) { o.CPUs = 1 })
		pidFile := filepath.Join(t.TempDir(), "pid")
		running, _ := h.ex.Submit(shellContract(`echo $$ > "$P"; sleep 0.3`, "P", pidFile), nil)
		waitPID(t, pidFile)
		queued, _ := h.ex.Submit(shellContract(`true`), nil)
		if err := h.ex.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		if res := wait(t, running); res.Status != contract.Succeeded {
			t.Errorf("running run: %s", res.Status)
		}
		if res := wait(t, queued); res.Status != contract.Cancelled {
			t.Errorf("queued run: %s, want Cancelled", res.Status)
		}
		if _, err := h.ex.Submit(shellContract(`true`), nil); !errors.Is(err, ErrShutdown) {
			t.Errorf("Submit after Shutdown = %v", err)
		}
		if entries, _ := os.ReadDir(h.ex.opts.Runner.WorkRoot); len(entries) != 0 {
			t.Errorf("work folders left after Shutdown: %v", entries)
		}
	})
	t.Run("cancels them after the grace", func(t *testing.T) {
		h := newHarness(t, nil)
		pidFile := filepath.Join(t.TempDir(), "pid")
		running, _ := h.ex.Submit(shellContract(`sleep 300 & echo $! > "$P"; wait`, "P", pidFile), nil)
		pid := waitPID(t, pidFile)
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		start := time.Now()
		if err := h.ex.Shutdown(ctx); err == nil {
			t.Errorf("Shutdown past its deadline returned no error")
		}
		if res := wait(t, running); res.Status != contract.Cancelled {
			t.Errorf("running run: %s", res.Status)
		}
		if !waitGone(pid) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Errorf("process %d survived shutdown", pid)
		}
		if d := time.Since(start); d > 3*time.Second {
			t.Errorf("shutdown took %v", d)
		}
		// The state folder is free again.
		ex2, err := New(Options{Store: h.st, StateDir: h.state})
		if err != nil {
			t.Fatalf("state folder still locked: %v", err)
		}
		ex2.Shutdown(context.Background())
	})
}

func TestStateFolderIsExclusive(t *testing.T) {
	h := newHarness(t, nil)
	if _, err := New(Options{Store: h.st, StateDir: h.state}); err == nil || !strings.Contains(err.Error(), "in use by another expsync process") ||
		!strings.Contains(err.Error(), "give each expsync its own state folder") {
		t.Errorf("second New on one state folder = %v", err)
	}
}

func waitPID(t *testing.T, path string) int {
	t.Helper()
	for range 500 {
		if b, err := os.ReadFile(path); err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("no pid in %s", path)
	return 0
}

func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

func waitGone(pid int) bool {
	for range 300 {
		if !alive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}
