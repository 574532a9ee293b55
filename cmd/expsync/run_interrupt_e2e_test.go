package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestRunInterruptedExitsNonZero: SIGTERM in the middle of a sweep
// commits the finished runs, ends the others, and exits 1 saying how many
// did not finish — a wrapper (`expsync run && notify`) never sees success
// for half a sweep.
func TestRunInterruptedExitsNonZero(t *testing.T) {
	l := newLab(t)
	key, _ := labKeyPair(t)
	marker := filepath.Join(t.TempDir(), "marker")
	l.Commit("fast and slow", map[string]string{"experiments/nap.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: nap
spec:
  image: host
  command: ["sh", "-c", "echo start {{params.s}} >> ` + marker + `; sleep {{params.s}}; echo end {{params.s}} >> ` + marker + `"]
  sweep:
    matrix:
      s: [0, 60]
  resources: {cpu: 100m}
`})
	store, state := t.TempDir(), t.TempDir()
	run := func() *exec.Cmd {
		cmd := exec.Command(expsyncBinary(t), "run", l.URL(), "--allow-http", "--branch", "main", "--key", key,
			"--store", store, "--state", state, "--progress", "plain", "-j", "2")
		cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
		return cmd
	}
	cmd := run()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(60 * time.Second)
	for {
		data, _ := os.ReadFile(marker)
		if strings.Contains(string(data), "end 0") && strings.Contains(string(data), "start 60") {
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("runs did not start; marker %q\nstderr:\n%s", data, stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond) // let the fast run reach the batcher
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err := cmd.Wait()
	var exit *exec.ExitError
	if !errors.As(err, &exit) || exit.ExitCode() != 1 {
		t.Fatalf("expsync run after SIGTERM: %v, want exit 1\nstdout:\n%s\nstderr:\n%s", err, stdout.String(), stderr.String())
	}
	if want := "interrupted: 1 run not finished, run again to resume"; !strings.Contains(stderr.String(), want) {
		t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
	}
	if n := len(l.folders("nap")); n != 1 {
		t.Errorf("%d run folders committed, want the finished one\nstdout:\n%s", n, stdout.String())
	}
}

// TestRunRejectedPushSummary: when the server's pre-receive hook
// refuses the results commit, the summary does not claim that nothing
// changed; it says the results wait in the run cache, and exit is 1.
func TestRunRejectedPushSummary(t *testing.T) {
	l := newLab(t)
	key, _ := labKeyPair(t)
	l.Commit("one run", map[string]string{"experiments/one.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: one
spec:
  image: host
  command: ["true"]
  resources: {cpu: 100m}
`})
	hook := filepath.Join(l.Srv.Root(), "lab.git", "hooks", "pre-receive")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'protected branch: pushes need review' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := labCLI(t, "run", l.URL(), "--allow-http", "--branch", "main", "--key", key,
		"--store", t.TempDir(), "--state", t.TempDir(), "--progress", "none")
	if code != 1 {
		t.Fatalf("exit %d, want 1\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	if strings.Contains(stdout, "nothing changed") || !strings.Contains(stdout, "kept in the run cache") {
		t.Errorf("summary contradicts the rejected push:\n%s\nstderr:\n%s", stdout, stderr)
	}
}
