package main

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/gitpeer"
)

// binLab is a lab (a real Git server on loopback, a peer driven by the git
// CLI) with a signing key, a store and a state folder for the built expsync
// binary, as an operator runs it.
type binLab struct {
	*lab
	key, pub     string
	store, state string
	env          []string
	// wrap, when set, starts the binary through this command (which must
	// exec it with the arguments that follow).
	wrap []string
}

func newBinLab(t *testing.T) *binLab {
	t.Helper()
	key, pub := labKeyPair(t)
	dir := t.TempDir()
	return &binLab{lab: newLab(t), key: key, pub: pub,
		store: filepath.Join(dir, "store"), state: filepath.Join(dir, "state")}
}

// command is the built binary with args, as the lab starts it.
func (b *binLab) command(args ...string) *exec.Cmd {
	b.T.Helper()
	argv := append([]string{expsyncBinary(b.T)}, args...)
	if len(b.wrap) > 0 {
		argv = append(append([]string(nil), b.wrap...), argv...)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(append(os.Environ(), "EXPSYNC_PASSWORD="), b.env...)
	return cmd
}

// runArgs are `expsync run`'s arguments for main with the lab's key,
// store and state.
func (b *binLab) runArgs(extra ...string) []string {
	return append([]string{"run", b.URL(), "--allow-http", "--branch", "main", "--key", b.key,
		"--store", b.store, "--state", b.state, "--progress", "none"}, extra...)
}

// expsync runs the built binary and returns its exit code and output.
func (b *binLab) expsync(args ...string) (code int, stdout, stderr string) {
	b.T.Helper()
	cmd := b.command(args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var exit *exec.ExitError
	switch {
	case errors.As(err, &exit):
		code = exit.ExitCode()
	case err != nil:
		b.T.Fatalf("expsync %v: %v", args, err)
	}
	return code, out.String(), errb.String()
}

// run is `expsync run` of main with the lab's key, store and state.
func (b *binLab) run(extra ...string) (int, string, string) {
	b.T.Helper()
	return b.expsync(b.runArgs(extra...)...)
}

// mustRun is run, failing the test unless it exits 0.
func (b *binLab) mustRun(extra ...string) string {
	b.T.Helper()
	code, stdout, stderr := b.run(extra...)
	if code != 0 {
		b.T.Fatalf("expsync run: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	return stdout
}

// verify runs `expsync verify results/ --key pub --repo . --rev REV` in a
// fresh clone checked out at rev.
func (b *binLab) verify(rev string, extra ...string) (int, string, string) {
	b.T.Helper()
	clone := b.Clone()
	b.Git(clone, "checkout", "-q", rev)
	args := append([]string{"verify", filepath.Join(clone, "results"), "--key", b.pub, "--repo", clone, "--rev", rev}, extra...)
	return b.expsync(args...)
}

// checkEveryCommit clones the server's main and checks every commit of
// its history out with the git CLI (protecting NTFS and HFS+ names, as Git
// for Windows and macOS do), then runs git fsck --strict: nothing expsync
// pushed may break a clone anywhere.
func (b *binLab) checkEveryCommit() {
	b.T.Helper()
	clone := b.Clone()
	protect := []string{"-c", "core.protectNTFS=true", "-c", "core.protectHFS=true"}
	for _, c := range strings.Fields(b.Git(clone, "rev-list", "--all")) {
		if _, err := gitpeer.Git(clone, append(protect, "checkout", "-q", "--force", c)...); err != nil {
			b.T.Errorf("git checkout %s: %v", c, err)
		}
	}
	if out, err := gitpeer.Git(clone, append(protect, "fsck", "--strict", "--no-dangling")...); err != nil || out != "" {
		b.T.Errorf("git fsck --strict: %q, %v", out, err)
	}
}

// treeHolds reports whether any path of rev's tree (or any file content,
// with grep) on the server holds s.
func (b *binLab) treeHolds(rev, s string) []string {
	b.T.Helper()
	clone := b.Clone()
	var found []string
	paths, _ := gitpeer.Git(clone, "-c", "core.quotePath=false", "ls-tree", "-r", "--name-only", rev)
	for _, p := range strings.Split(paths, "\n") {
		if strings.Contains(p, s) {
			found = append(found, "path "+p)
		}
	}
	if out, err := gitpeer.Git(clone, "grep", "-l", "-F", s, rev); err == nil && out != "" {
		found = append(found, "content of "+out)
	}
	return found
}
