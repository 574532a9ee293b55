package local

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
)

// TestMain lets the test binary act as an expsync process running runs, so
// a test can SIGKILL it in the middle of a run.
func TestMain(m *testing.M) {
	if os.Getenv("EXPSYNC_EXECUTOR_HELPER") == "1" {
		os.Exit(helperExecutor())
	}
	os.Exit(m.Run())
}

func helperExecutor() int {
	var c contract.Contract
	data, err := os.ReadFile(os.Getenv("EXPSYNC_HELPER_CONTRACT"))
	if err == nil {
		err = json.Unmarshal(data, &c)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	st, err := store.OpenLocal(os.Getenv("EXPSYNC_HELPER_STORE"))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	ex, err := New(Options{Store: st, StateDir: os.Getenv("EXPSYNC_HELPER_STATE"), Runner: runner.Options{WorkRoot: os.Getenv("EXPSYNC_HELPER_WORK")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	j, err := ex.Submit(c, map[string]string{"repo": "r1"})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 3
	}
	j.Wait(context.Background()) // killed before this returns
	return 0
}

func TestRecoverAfterSIGKILL(t *testing.T) {
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	state, dir := t.TempDir(), t.TempDir()
	// First attempt: a leader and a grandchild that both wait forever.
	// After recovery the same contract finishes at once.
	c := shellContract(`if [ -e "$D/first" ]; then echo ok > o.txt; exit 0; fi
touch "$D/first"
echo $$ > "$D/leader.pid"
sleep 300 & echo $! > "$D/grandchild.pid"
setsid sleep 301 & echo $! > "$D/escaped.pid"
wait`, "D", dir)
	c.Outputs = []string{"o.txt"}
	contractFile := filepath.Join(t.TempDir(), "c.json")
	data, _ := json.Marshal(c)
	os.WriteFile(contractFile, data, 0o644)

	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "EXPSYNC_EXECUTOR_HELPER=1", "EXPSYNC_HELPER_CONTRACT="+contractFile,
		"EXPSYNC_HELPER_STORE="+st.Root(), "EXPSYNC_HELPER_STATE="+state, "EXPSYNC_HELPER_WORK="+t.TempDir())
	var out strings.Builder
	helper.Stdout, helper.Stderr = &out, &out
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	leader := waitPID(t, filepath.Join(dir, "leader.pid"))
	grandchild := waitPID(t, filepath.Join(dir, "grandchild.pid"))
	escaped := waitPID(t, filepath.Join(dir, "escaped.pid"))
	t.Cleanup(func() {
		for _, p := range []int{grandchild, leader, escaped} {
			syscall.Kill(p, syscall.SIGKILL)
		}
	})
	// The journal has the process group before we kill the helper.
	waitJournalPGID(t, state, c.RunID)
	if err := helper.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	helper.Wait()

	// Pdeathsig ends the leader; the grandchild stays in the orphaned group
	// until Recover ends it.
	if !waitGone(leader) {
		t.Errorf("run's leader %d survived its parent's SIGKILL (Pdeathsig)", leader)
	}
	if !alive(grandchild) || !alive(escaped) {
		t.Fatalf("grandchild %d or setsid'd process %d died on its own; the test cannot show Recover ends them", grandchild, escaped)
	}

	ex, err := New(Options{Store: st, StateDir: state, CPUs: 2, MemoryBytes: 1 << 30, Runner: runner.Options{WorkRoot: t.TempDir()}})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background())
	recovered, err := ex.Recover(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(recovered) != 1 || recovered[0].Contract.RunID != c.RunID || !recovered[0].Ended || recovered[0].Result != nil || recovered[0].Meta["repo"] != "r1" {
		t.Fatalf("recovered %+v, want the one run, its group ended, no result, its meta", recovered)
	}
	if alive(grandchild) {
		t.Errorf("grandchild %d alive after Recover", grandchild)
	}
	// A process that left the group with setsid is found by its run ID.
	if !waitGone(escaped) {
		t.Errorf("setsid'd process %d alive after Recover", escaped)
	}
	if fi, err := os.Stat(filepath.Join(state, "journal.jsonl")); err != nil || fi.Size() != 0 {
		t.Errorf("journal not emptied (%v)", err)
	}
	// Rerun it: exactly one result.
	j, err := ex.Submit(recovered[0].Contract, recovered[0].Meta)
	if err != nil {
		t.Fatal(err)
	}
	if res := wait(t, j); res.Status != contract.Succeeded || len(res.Outputs) != 1 {
		t.Fatalf("rerun: %s %s", res.Status, res.Error)
	}
	if again, _ := ex.Recover(context.Background()); len(again) != 0 {
		t.Errorf("second Recover returned %d runs", len(again))
	}
}

func waitJournalPGID(t *testing.T, state, runID string) {
	t.Helper()
	for range 500 {
		data, _ := os.ReadFile(filepath.Join(state, "journal.jsonl"))
		for _, line := range strings.Split(string(data), "\n") {
			var e entry
			if json.Unmarshal([]byte(line), &e) == nil && e.Op == "start" && e.RunID == runID && e.PGID > 0 {
				return
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("journal never recorded the process group of %s", runID)
}

func TestRecoverReturnsCachedResultAndSparesReusedPIDs(t *testing.T) {
	h := newHarness(t, nil)
	ctx := context.Background()
	// A run that finished and was cached, but whose record outlived a crash.
	done := shellContract(`true`)
	if _, err := runner.RunCached(ctx, done, runner.Options{Store: h.st, WorkRoot: t.TempDir()}); err != nil {
		t.Fatal(err)
	}
	// A record whose PGID now belongs to an unrelated process group (ours),
	// with a different start time: it must not be killed.
	bystander := exec.Command("sleep", "30")
	bystander.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := bystander.Start(); err != nil {
		t.Fatal(err)
	}
	defer bystander.Process.Kill()
	ticks, err := runner.ProcessStartTicks(bystander.Process.Pid)
	if err != nil {
		t.Fatal(err)
	}
	reused := shellContract(`true`)
	if err := h.ex.journal.run(record{RunID: done.RunID, Contract: done}); err != nil {
		t.Fatal(err)
	}
	if err := h.ex.journal.run(record{RunID: reused.RunID, Contract: reused}); err != nil {
		t.Fatal(err)
	}
	if err := h.ex.journal.started(reused.RunID, bystander.Process.Pid, ticks-1, 1); err != nil {
		t.Fatal(err)
	}
	// A line cut short by a crash is ignored.
	h.ex.journal.f.Write([]byte(`{"op":"run","runID":"abc`))
	recovered, err := h.ex.Recover(ctx)
	if err != nil {
		t.Fatal(err)
	}
	byID := map[string]Recovered{}
	for _, r := range recovered {
		byID[r.Contract.RunID] = r
	}
	if r := byID[done.RunID]; r.Result == nil || r.Result.Status != contract.Succeeded {
		t.Errorf("finished run not recovered from the cache: %+v", r)
	}
	if r := byID[reused.RunID]; r.Ended || r.Result != nil {
		t.Errorf("reused-PID record: %+v", r)
	}
	if !alive(bystander.Process.Pid) {
		t.Errorf("Recover killed an unrelated process whose PID matched a stale record")
	}
}

func TestJournalCompactsWhileRunsStayInFlight(t *testing.T) {
	old := compactBytes
	compactBytes = 4096
	defer func() { compactBytes = old }()
	path := filepath.Join(t.TempDir(), "journal.jsonl")
	j, err := openJournal(path)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	long := shellContract(`sleep 1`)
	if err := j.run(record{RunID: long.RunID, Contract: long}); err != nil {
		t.Fatal(err)
	}
	if err := j.started(long.RunID, 4242, 7, 1); err != nil {
		t.Fatal(err)
	}
	// Many short runs pass while the long one stays in flight.
	for range 200 {
		c := shellContract(`true`)
		j.run(record{RunID: c.RunID, Contract: c})
		j.end(c.RunID)
	}
	fi, _ := os.Stat(path)
	if fi.Size() > 2*compactBytes {
		t.Errorf("journal grew to %d bytes; compaction keeps it near %d", fi.Size(), compactBytes)
	}
	recs, err := j.replay()
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 1 || recs[0].RunID != long.RunID || recs[0].PGID != 4242 || recs[0].StartTicks != 7 {
		t.Errorf("replay after compaction = %+v, want the long run with its process group", recs)
	}
}
