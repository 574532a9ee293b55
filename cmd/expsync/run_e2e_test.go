package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// labCopyTree copies a folder of the repository (the examples) into dst.
func labCopyTree(t testing.TB, src, dst string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		data, err := os.ReadFile(p)
		files[filepath.ToSlash(rel)] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestRunExamplesEndToEnd is the quickstart as a test: push the example
// repository to a real Git server, `expsync run` it, re-clone, and check
// the results commit with `expsync verify --repo`; a second run commits
// nothing.
func TestRunExamplesEndToEnd(t *testing.T) {
	l := newLab(t)
	key, pub := labKeyPair(t)
	t.Setenv("EXPSYNC_PASSWORD", "")
	source := l.commit("examples", labCopyTree(t, "../../examples/experiments", ""))
	store, state := t.TempDir(), t.TempDir()
	args := []string{"run", l.url(), "--allow-http", "--key", key, "--store", store, "--state", state, "--progress", "plain", "--batch-interval", "1s"}

	code, stdout, stderr := labCLI(t, args...)
	if code != 0 {
		t.Fatalf("expsync run exited %d:\n%s\n%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`results commit ([0-9a-f]{40}) pushed to main`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no results commit printed:\n%s", stdout)
	}
	if head := l.head(); head != m[1] {
		t.Errorf("printed results commit %s, main is at %s", m[1], head)
	}
	if !strings.Contains(stderr, "[17/17]") {
		t.Errorf("no progress lines for 17 runs:\n%s", stderr)
	}
	clone := l.clone()
	if first := l.git(clone, "rev-list", "--max-parents=0", "HEAD"); first != source {
		t.Errorf("history does not start at the experiments commit")
	}
	folders, _ := filepath.Glob(filepath.Join(clone, "results", "*", "*", "run.json"))
	if len(folders) != 17 {
		t.Errorf("want 17 run folders, got %d", len(folders))
	}
	for _, f := range []string{"results/README.md", "results/descent-sweep/README.md", "results/descent-sweep/plot.svg", "results/pi-montecarlo/README.md"} {
		if _, err := os.Stat(filepath.Join(clone, f)); err != nil {
			t.Errorf("missing %s", f)
		}
	}

	verifyArgs := []string{"verify", "--key", pub, "--repo", clone}
	dirs, _ := filepath.Glob(filepath.Join(clone, "results", "*", "*"))
	for _, d := range dirs {
		if fi, err := os.Stat(d); err == nil && fi.IsDir() {
			verifyArgs = append(verifyArgs, d)
		}
	}
	code, vout, verr := labCLI(t, verifyArgs...)
	if code != 0 || !strings.Contains(vout, "17 verified, 0 failed") {
		t.Errorf("expsync verify exited %d:\n%s\n%s", code, vout, verr)
	}

	head := l.head()
	code, stdout, stderr = labCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, "nothing to do: all 17 runs") {
		t.Errorf("second run exited %d:\n%s\n%s", code, stdout, stderr)
	}
	if l.head() != head {
		t.Errorf("second run created a commit")
	}
}

// TestRunRefusesACheckedOutBranch: a clone without an origin is refused
// with a message that says what to pass instead.
func TestRunRefusesACloneWithoutOrigin(t *testing.T) {
	dir := t.TempDir()
	if _, err := labGit(dir, "init", "-q", "-b", "main"); err != nil {
		t.Fatal(err)
	}
	key, _ := labKeyPair(t)
	code, _, stderr := labCLI(t, "run", dir, "--key", key, "--store", t.TempDir(), "--state", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "never pushes into a checked-out branch") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}
