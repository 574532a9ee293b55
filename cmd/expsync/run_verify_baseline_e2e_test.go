package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// binCLI runs the built expsync binary and returns its exit code, stdout
// and stderr.
func binCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(expsyncBinary(t), args...)
	cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatal(err)
	}
	return 0, stdout.String(), stderr.String()
}

// TestRunVerifyCommitsOnExistingHistory: --verify-commits turned on for a
// branch whose history is unsigned (and that expsync ran before, so its
// Git cache holds that history) runs the signed head — the baseline — and
// from then on refuses an unsigned commit, also under a signed head, until
// --verify-from names a signed commit above it. The real binary, against a
// real Git server.
func TestRunVerifyCommitsOnExistingHistory(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen (OpenSSH) is needed to sign commits with the git CLI")
	}
	l := newLab(t)
	key, _ := labKeyPair(t)
	dir := t.TempDir()
	for _, name := range []string{"maintainer", "expsync"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	experiment := "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: echo}\nspec:\n  image: host\n  command: [\"sh\", \"-c\", \"cat code/README.md\"]\n  context: code\n"
	for i, readme := range []string{"1\n", "2\n", "3\n"} {
		files := map[string]string{"code/README.md": readme}
		if i == 0 {
			files["experiments/echo.yaml"] = experiment
		}
		l.Commit("unsigned history", files)
	}
	signed := func(msg, readme string) string {
		t.Helper()
		l.Pull()
		if err := os.WriteFile(filepath.Join(l.Peer, "code", "README.md"), []byte(readme), 0o644); err != nil {
			t.Fatal(err)
		}
		l.Git(l.Peer, "add", "-A")
		l.Git(l.Peer, "-c", "gpg.format=ssh", "-c", "user.signingkey="+filepath.Join(dir, "maintainer"), "commit", "-q", "-S", "-m", msg)
		l.Git(l.Peer, "push", "-q", "origin", "HEAD:main")
		return l.Git(l.Peer, "rev-parse", "HEAD")
	}
	state := t.TempDir()
	common := []string{"run", l.URL(), "--allow-http", "--key", key, "--store", t.TempDir(), "--state", state, "--progress", "none"}
	verify := append(slices.Clone(common), "--verify-commits", "--commit-key", filepath.Join(dir, "maintainer.pub"),
		"--commit-signing-key", filepath.Join(dir, "expsync"))

	// Before verification: expsync runs the branch (its cache now holds
	// the unsigned history, and an unsigned results commit tops it).
	if code, out, errOut := binCLI(t, common...); code != 0 || !strings.Contains(out, "results commit") {
		t.Fatalf("run before verification: exit %d\n%s\n%s", code, out, errOut)
	}
	type outcome struct {
		Code  int
		Finds bool // stdout+stderr contains the wanted text
	}
	step := func(what string, args []string, wantCode int, want string) {
		t.Helper()
		code, out, errOut := binCLI(t, args...)
		got := outcome{code, strings.Contains(out+errOut, want)}
		if diff := cmp.Diff(outcome{wantCode, true}, got); diff != "" {
			t.Errorf("%s (want %q): -want +got\n%s\nstdout:\n%s\nstderr:\n%s", what, want, diff, out, errOut)
		}
	}
	// Verification turned on, the head signed: the baseline runs.
	signed("signed head", "4\n")
	step("signed head over unsigned history", verify, 0, "results commit")
	step("expsync's own signed results commit", verify, 0, "nothing to do")

	// An unsigned commit after the baseline: refused, also under a signed head.
	unsigned := l.commitUnsigned("unsigned after the baseline", map[string]string{"code/README.md": "5\n"})
	step("unsigned commit after the baseline", verify, 1, unsigned+" by Peer <peer@example.org> is not signed")
	over := signed("signed over the unsigned commit", "6\n")
	step("signed head over an unsigned commit after the baseline", verify, 1, unsigned+" by Peer <peer@example.org> is not signed")

	// --verify-from moves the branch past it; it needs --verify-commits
	// and a full commit ID, and the commit must be signed.
	step("--verify-from an unsigned commit", append(slices.Clone(verify), "--verify-from", unsigned), 1, "verification baseline (from) "+unsigned+" is refused")
	step("--verify-from without --verify-commits", append(slices.Clone(common), "--verify-from", over), 2, "--verify-from needs --verify-commits")
	step("--verify-from an abbreviated commit", append(slices.Clone(verify), "--verify-from", over[:12]), 2, "not a full commit ID")
	step("--verify-from the signed commit above it", append(slices.Clone(verify), "--verify-from", over), 0, "results commit")
	// Remembered: later runs need no --verify-from.
	signed("signed after the new baseline", "7\n")
	step("signed commit after the new baseline", verify, 0, "results commit")
}
