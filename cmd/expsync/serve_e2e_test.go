package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// slowExperiment is a sweep whose runs record "start X PID" in marker,
// sleep, write an output and record "end X".
func slowExperiment(marker, xs string, sleep int) map[string]string {
	return map[string]string{
		"experiments/slow.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: slow
spec:
  image: host
  command: ["sh", "slow.sh", "{{params.x}}"]
  context: code/slow
  env:
    - {name: MARKER, value: "` + marker + `"}
  sweep:
    matrix:
      x: [` + xs + `]
  outputs: [out/v.txt]
  resources: {cpu: 100m}
  timeout: 2m
`,
		"code/slow/slow.sh": fmt.Sprintf(`echo "start $1 $$" >> "$MARKER"
sleep %d
mkdir -p out
echo "value $1" > out/v.txt
echo "end $1" >> "$MARKER"
`, sleep),
	}
}

// serveProc is `expsync serve` as a child process.
type serveProc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	log  bytes.Buffer
	done chan error
}

func startServe(t *testing.T, config string) *serveProc {
	t.Helper()
	p := &serveProc{done: make(chan error, 1)}
	p.cmd = exec.Command(expsyncBinary(t), "serve", "--config", config)
	p.cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			p.mu.Lock()
			p.log.WriteString(sc.Text() + "\n")
			p.mu.Unlock()
		}
		p.done <- p.cmd.Wait()
	}()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

func (p *serveProc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.log.String()
}

func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	_ = p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(60 * time.Second):
		t.Fatalf("expsync serve did not stop on SIGTERM:\n%s", p.output())
	}
}

func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool, log func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s; serve log:\n%s", what, log())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type markerLine struct {
	kind string // start or end
	x    string
	pid  int
}

func readMarker(t testing.TB, file string) []markerLine {
	t.Helper()
	data, err := os.ReadFile(file)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out []markerLine
	for _, line := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		m := markerLine{kind: f[0], x: f[1]}
		if len(f) > 2 {
			m.pid, _ = strconv.Atoi(f[2])
		}
		out = append(out, m)
	}
	return out
}

func count(lines []markerLine, kind string) int {
	n := 0
	for _, l := range lines {
		if l.kind == kind {
			n++
		}
	}
	return n
}

// groupAlive reports whether a live process (not a zombie waiting for a
// reaper) of process group pgid exists, read from /proc.
func groupAlive(pgid int) bool {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return syscall.Kill(-pgid, 0) == nil
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:]) // state, ppid, pgrp, ...
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			return true
		}
	}
	return false
}

func writeServeConfig(t *testing.T, l *lab, key string) string {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`store: %s
state: %s
key: %s
interval: 500ms
batchInterval: 500ms
concurrency: 4
repositories:
  - url: %s
    allowHTTP: true
    refs:
      - {pattern: main, trusted: true}
`, filepath.Join(dir, "store"), filepath.Join(dir, "state"), key, l.URL())
	file := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// folders lists the run folders of experiment in a fresh clone.
func (l *lab) folders(experiment string) []string {
	l.T.Helper()
	clone := l.Clone()
	dirs, _ := filepath.Glob(filepath.Join(clone, "results", experiment, "*", "run.json"))
	for i := range dirs {
		dirs[i] = filepath.Dir(dirs[i])
	}
	return dirs
}

// TestServeSurvivesSIGKILL kills `expsync serve` while its runs are in
// flight, restarts it, and checks: the killed runs' process groups are
// ended at restart (no orphan), every run ends with exactly one verified
// result folder and its output.
func TestServeSurvivesSIGKILL(t *testing.T) {
	if testing.Short() {
		t.Skip("starts and kills expsync serve processes (about 20 s)")
	}
	l := newLab(t)
	key, pub := labKeyPair(t)
	marker := filepath.Join(t.TempDir(), "marker")
	source := l.Commit("slow sweep", slowExperiment(marker, "1, 2, 3", 6))
	config := writeServeConfig(t, l, key)

	first := startServe(t, config)
	waitFor(t, "3 runs to start", 60*time.Second, func() bool { return count(readMarker(t, marker), "start") == 3 }, first.output)
	var pgids []int
	for _, m := range readMarker(t, marker) {
		pgids = append(pgids, m.pid)
	}
	if err := first.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-first.done
	if l.Head() != source {
		t.Fatalf("results were committed before any run finished")
	}

	second := startServe(t, config)
	waitFor(t, "the restarted serve to recover", 30*time.Second, func() bool { return strings.Contains(second.output(), "msg=serving repositories=1") }, second.output)
	for _, pgid := range pgids {
		if groupAlive(pgid) {
			t.Errorf("process group %d of a killed run is still running after the restart", pgid)
		}
	}
	waitFor(t, "3 results on main", 90*time.Second, func() bool { return l.Head() != source && len(l.folders("slow")) == 3 }, second.output)
	second.stop(t)

	clone := l.Clone()
	dirs, _ := filepath.Glob(filepath.Join(clone, "results", "slow", "*", "run.json"))
	if len(dirs) != 3 {
		t.Fatalf("want exactly 3 run folders, got %d", len(dirs))
	}
	args := []string{"verify", "--key", pub, "--repo", clone}
	values := map[string]bool{}
	for _, rj := range dirs {
		dir := filepath.Dir(rj)
		args = append(args, dir)
		data, err := os.ReadFile(filepath.Join(dir, "outputs", "out", "v.txt"))
		if err != nil {
			t.Errorf("output lost: %v", err)
		}
		values[strings.TrimSpace(string(data))] = true
	}
	if len(values) != 3 {
		t.Errorf("outputs %v, want three distinct values", values)
	}
	if code, out, errOut := labCLI(t, args...); code != 0 {
		t.Errorf("verify exited %d:\n%s\n%s", code, out, errOut)
	}
	if ends := count(readMarker(t, marker), "end"); ends != 3 {
		t.Errorf("%d runs ended, want 3 (each killed run rerun once)", ends)
	}
	if !strings.Contains(second.output(), "was in flight when expsync stopped") {
		t.Errorf("the restart did not report the recovered runs:\n%s", second.output())
	}
}

// TestServeCancelsRunsOfAnEditedExperiment: a commit that edits an
// experiment while its runs are in flight cancels them; only the new
// commit's runs are committed.
func TestServeCancelsRunsOfAnEditedExperiment(t *testing.T) {
	if testing.Short() {
		t.Skip("starts expsync serve (about 10 s)")
	}
	l := newLab(t)
	key, _ := labKeyPair(t)
	marker := filepath.Join(t.TempDir(), "marker")
	l.Commit("slow sweep", slowExperiment(marker, "1, 2", 60))
	serve := startServe(t, writeServeConfig(t, l, key))
	waitFor(t, "2 runs to start", 60*time.Second, func() bool { return count(readMarker(t, marker), "start") == 2 }, serve.output)
	old := readMarker(t, marker)

	// The edit changes the command's sleep: every run ID moves.
	l.Git(l.Peer, "pull", "-q", "--ff-only", "origin", "main")
	edited := l.Commit("faster", slowExperiment(marker, "1, 2", 1))
	waitFor(t, "the old runs to be cancelled", 30*time.Second, func() bool {
		return !groupAlive(old[0].pid) && !groupAlive(old[1].pid)
	}, serve.output)
	waitFor(t, "2 results on main", 60*time.Second, func() bool { return l.Head() != edited && len(l.folders("slow")) == 2 }, serve.output)
	serve.stop(t)
	if !strings.Contains(serve.output(), "in-flight runs cancelled") && strings.Contains(serve.output(), "cancelled=2") {
		t.Errorf("serve did not report the cancellation:\n%s", serve.output())
	}
	for _, dir := range l.folders("slow") {
		data, _ := os.ReadFile(filepath.Join(dir, "run.json"))
		if !strings.Contains(string(data), `"commit": "`+edited) {
			t.Errorf("%s is not a run of the edited commit", filepath.Base(dir))
		}
	}
}
