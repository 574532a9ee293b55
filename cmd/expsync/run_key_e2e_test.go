package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
)

// TestRunWithAWrongPassphraseLosesNothing: `expsync run` decrypts the key
// while the first runs execute. A wrong passphrase stops the reconcile
// with an error naming the key and pushes nothing; runs still going are
// ended (they had run a fraction of a second) and run again. Runs whose
// results were cached are recovered from the run cache, not run again, once
// the passphrase is right (the marker, each run's last command, counts
// finished runs).
func TestRunWithAWrongPassphraseLosesNothing(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "lab")
	kg := &keygenOptions{KeyPrefix: prefix, Type: "ecdsa", Passphrase: func() ([]byte, error) { return []byte("right"), nil }}
	if err := kg.Exec(io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "executions")
	var xs []string
	for i := 1; i <= 30; i++ {
		xs = append(xs, fmt.Sprint(i))
	}
	l := newLab(t)
	head := l.Commit("sweep", map[string]string{
		"experiments/count.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: count
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out && echo $0 > out/v.txt && echo $0 >> ` + marker + `", "{{params.i}}"]
  sweep:
    matrix:
      i: [` + strings.Join(xs, ", ") + `]
  outputs: [out/v.txt]
  resources: {cpu: 100m}
`})
	store, state := t.TempDir(), t.TempDir()
	args := []string{"run", l.URL(), "--allow-http", "--key", prefix + ".key", "--store", store, "--state", state, "--progress", "none"}

	t.Setenv(attest.PasswordEnv, "wrong")
	code, stdout, stderr := labCLI(t, args...)
	if code == 0 || !strings.Contains(stderr, prefix+".key") || !strings.Contains(stderr, "wrong passphrase") {
		t.Fatalf("wrong passphrase: exit %d, want an error naming the key and the wrong passphrase\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if got := l.Head(); got != head {
		t.Fatalf("wrong passphrase: main moved from %s to %s; nothing may be pushed", head, got)
	}
	before := executions(t, marker)
	t.Logf("wrong passphrase: %d runs finished before the key error; stderr: %s", before, stderr)

	t.Setenv(attest.PasswordEnv, "right")
	code, stdout, stderr = labCLI(t, args...)
	if code != 0 {
		t.Fatalf("right passphrase: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	var executed, recovered int
	m := regexp.MustCompile(`30 runs planned, 0 already done, (\d+) executed, (\d+) recovered from the run cache \(30 succeeded, 0 failed\)`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("second run: no report of 30 runs, all succeeded:\n%s", stdout)
	}
	executed, _ = strconv.Atoi(m[1])
	recovered, _ = strconv.Atoi(m[2])
	// A run cached by the first attempt finished its command; one still
	// going when the key error came (its process, or hashing its outputs)
	// was ended and runs again.
	if recovered > before {
		t.Errorf("%d runs recovered, but only %d finished in the first attempt", recovered, before)
	}
	if before >= 10 && recovered == 0 {
		t.Errorf("%d runs finished in the first attempt and none was recovered from the run cache", before)
	}
	if n := executions(t, marker); n != before+executed {
		t.Errorf("%d executions in all, want %d finished before the key error + %d executed now: a recovered run ran again", n, before, executed)
	}
}

// executions counts the lines of the marker file (0 when absent).
func executions(t *testing.T, marker string) int {
	t.Helper()
	data, err := os.ReadFile(marker)
	if os.IsNotExist(err) {
		return 0
	}
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// TestServeWithAWrongPassphraseStopsAtOnce: `expsync serve` loads its key
// once, so a wrong passphrase would fail every reconcile; serve says so
// and exits (code 2, naming the key and what to fix) before polling,
// instead of running experiments it can never sign and logging the same
// error at every poll.
func TestServeWithAWrongPassphraseStopsAtOnce(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "lab")
	kg := &keygenOptions{KeyPrefix: prefix, Type: "ecdsa", Passphrase: func() ([]byte, error) { return []byte("right"), nil }}
	if err := kg.Exec(io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	marker := filepath.Join(t.TempDir(), "executions")
	l := newLab(t)
	head := l.Commit("one run", map[string]string{
		"experiments/one.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: one
spec:
  image: host
  command: ["sh", "-c", "echo ran >> ` + marker + `"]
  resources: {cpu: 100m}
`})
	t.Setenv(attest.PasswordEnv, "wrong")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var log bytes.Buffer
	start := time.Now()
	err := (&serveOptions{Config: writeServeConfig(t, l, prefix+".key")}).Exec(ctx, &log)
	var exit *exitError
	if !errors.As(err, &exit) || exit.code != 2 || !strings.Contains(err.Error(), prefix+".key") ||
		!strings.Contains(err.Error(), "wrong passphrase") || !strings.Contains(err.Error(), "start serve again") {
		t.Fatalf("serve with a wrong passphrase returned %v after %s, want exit 2 naming the key and what to do; log:\n%s",
			err, time.Since(start).Round(time.Millisecond), log.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("serve ran until the test's deadline instead of stopping at once; log:\n%s", log.String())
	}
	if got := l.Head(); got != head {
		t.Errorf("main moved from %s to %s; nothing may be pushed", head, got)
	}
	if n := executions(t, marker); n != 0 {
		t.Errorf("%d runs executed with a key that cannot sign them", n)
	}
}

// TestRunWithAnUnusableKeyIsAUsageError: a signing key that cannot be
// used — a public key given as --key, or a wrong passphrase — is fixed by
// the operator like a missing key file, so `expsync run` exits 2 as it does
// for a missing file (and as serve does), naming the key; it claims no
// planning outcome it did not reach (before: exit 1 and "3 runs planned,
// 0 already done" for a branch whose runs were all done).
func TestRunWithAnUnusableKeyIsAUsageError(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "lab")
	kg := &keygenOptions{KeyPrefix: prefix, Type: "ecdsa", Passphrase: func() ([]byte, error) { return []byte("right"), nil }}
	if err := kg.Exec(io.Discard, io.Discard); err != nil {
		t.Fatal(err)
	}
	l := newLab(t)
	l.Commit("one run", map[string]string{
		"experiments/one.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: one
spec:
  image: host
  command: ["sh", "-c", "echo ran"]
  resources: {cpu: 100m}
`})
	store, state := t.TempDir(), t.TempDir()
	args := func(key string) []string {
		return []string{"run", l.URL(), "--allow-http", "--key", key, "--store", store, "--state", state, "--progress", "none"}
	}
	// The first run is another process: attest keeps decrypted keys for
	// the life of a process, and this one must decrypt it afresh.
	first := exec.Command(expsyncBinary(t), args(prefix+".key")...)
	first.Env = append(os.Environ(), attest.PasswordEnv+"=right")
	if out, err := first.CombinedOutput(); err != nil {
		t.Fatalf("first run: %v\n%s", err, out)
	}
	head := l.Head()
	for _, tc := range []struct {
		name, key, password, want string
	}{
		{"wrong passphrase", prefix + ".key", "wrong", "wrong passphrase"},
		{"public key", prefix + ".pub", "right", "not a private key"},
		{"missing file", prefix + ".missing", "right", "no such file or directory (give the key file expsync keygen made"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(attest.PasswordEnv, tc.password)
			code, stdout, stderr := labCLI(t, args(tc.key)...)
			if code != 2 || !strings.Contains(stderr, tc.key) || !strings.Contains(stderr, tc.want) {
				t.Errorf("exit %d, want 2 with an error naming %s and %q\nstdout: %s\nstderr: %s", code, tc.key, tc.want, stdout, stderr)
			}
			if strings.Contains(stdout, "already done") {
				t.Errorf("the report claims an outcome the key error stopped short of:\n%s", stdout)
			}
			if got := l.Head(); got != head {
				t.Errorf("main moved from %s to %s", head, got)
			}
		})
	}
}
