package main

import (
	"fmt"
	"github.com/expsync/expsync/internal/gitpeer"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
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
	examples := labCopyTree(t, "../../examples/experiments", "")
	source := l.Commit("examples", examples)
	// How many runs the examples plan (17 when this was written).
	plan, err := render.Plan(tree.MemoryOf(examples), render.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n := len(plan.Runs)
	store, state := t.TempDir(), t.TempDir()
	args := []string{"run", l.URL(), "--allow-http", "--key", key, "--store", store, "--state", state, "--progress", "plain", "--batch-interval", "1s"}

	code, stdout, stderr := labCLI(t, args...)
	if code != 0 {
		t.Fatalf("expsync run exited %d:\n%s\n%s", code, stdout, stderr)
	}
	m := regexp.MustCompile(`results commit ([0-9a-f]{40}) pushed to main`).FindStringSubmatch(stdout)
	if m == nil {
		t.Fatalf("no results commit printed:\n%s", stdout)
	}
	if head := l.Head(); head != m[1] {
		t.Errorf("printed results commit %s, main is at %s", m[1], head)
	}
	if !strings.Contains(stderr, fmt.Sprintf("[%d/%d]", n, n)) {
		t.Errorf("no progress lines for %d runs:\n%s", n, stderr)
	}
	clone := l.Clone()
	if first := l.Git(clone, "rev-list", "--max-parents=0", "HEAD"); first != source {
		t.Errorf("history does not start at the experiments commit")
	}
	folders, _ := filepath.Glob(filepath.Join(clone, "results", "*", "*", "run.json"))
	if len(folders) != n {
		t.Errorf("want %d run folders, got %d", n, len(folders))
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
	if code != 0 || !strings.Contains(vout, fmt.Sprintf("%d verified, 0 failed", n)) {
		t.Errorf("expsync verify exited %d:\n%s\n%s", code, vout, verr)
	}

	head := l.Head()
	code, stdout, stderr = labCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("nothing to do: all %d runs", n)) {
		t.Errorf("second run exited %d:\n%s\n%s", code, stdout, stderr)
	}
	if l.Head() != head {
		t.Errorf("second run created a commit")
	}

	// One more seed in pi.yaml (which sits in its own context folder): one
	// new run, the others stay done.
	l.Git(l.Peer, "pull", "-q", "--ff-only", "origin", "main")
	piYAML, err := os.ReadFile(filepath.Join(l.Peer, "experiments/pi/pi.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(piYAML), "seed: [1, 2, 3]") {
		t.Fatalf("examples/experiments/experiments/pi/pi.yaml no longer sweeps seed: [1, 2, 3]; update this test")
	}
	l.Commit("one more seed", map[string]string{"experiments/pi/pi.yaml": strings.Replace(string(piYAML), "seed: [1, 2, 3]", "seed: [1, 2, 3, 4]", 1)})
	code, stdout, stderr = labCLI(t, args...)
	if code != 0 || !strings.Contains(stdout, fmt.Sprintf("%d runs planned, %d already done, 1 executed", n+1, n)) {
		t.Errorf("one more seed: exit %d:\n%s\n%s", code, stdout, stderr)
	}
}

// TestRunRefusesACheckedOutBranch: a clone without an origin is refused
// with a message that says what to pass instead.
func TestRunRefusesACloneWithoutOrigin(t *testing.T) {
	dir := t.TempDir()
	if _, err := gitpeer.Git(dir, "init", "-q", "-b", "main"); err != nil {
		t.Fatal(err)
	}
	key, _ := labKeyPair(t)
	code, _, stderr := labCLI(t, "run", dir, "--key", key, "--store", t.TempDir(), "--state", t.TempDir())
	if code != 2 || !strings.Contains(stderr, "never pushes into a checked-out branch") {
		t.Errorf("exit %d: %s", code, stderr)
	}
}

// TestRunVerifiedCommits: with --verify-commits a branch runs only when its
// commits are signed by an allowed key, and expsync's own signed results
// commits are accepted on the next run.
func TestRunVerifiedCommits(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen (OpenSSH) is needed to sign commits with the git CLI")
	}
	l := newLab(t)
	key, _ := labKeyPair(t)
	t.Setenv("EXPSYNC_PASSWORD", "")
	dir := t.TempDir()
	for _, name := range []string{"maintainer", "expsync"} {
		if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", name, "-f", filepath.Join(dir, name)).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen: %v %s", err, out)
		}
	}
	allowed := filepath.Join(dir, "maintainer.pub")
	files := map[string]string{
		"experiments/echo.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: echo}\nspec:\n  image: host\n  command: [\"sh\", \"-c\", \"echo hi\"]\n  context: code\n",
		"code/README.md":        "x\n",
	}
	for name, content := range files {
		full := filepath.Join(l.Peer, name)
		_ = os.MkdirAll(filepath.Dir(full), 0o755)
		_ = os.WriteFile(full, []byte(content), 0o644)
	}
	l.Git(l.Peer, "add", "-A")
	l.Git(l.Peer, "-c", "gpg.format=ssh", "-c", "user.signingkey="+filepath.Join(dir, "maintainer"), "commit", "-q", "-S", "-m", "signed")
	l.Git(l.Peer, "push", "-q", "origin", "HEAD:main")

	base := []string{"run", l.URL(), "--allow-http", "--key", key, "--store", t.TempDir(), "--state", t.TempDir(),
		"--progress", "none", "--verify-commits", "--commit-key", allowed}
	code, out, errOut := labCLI(t, append(base, "--commit-signing-key", filepath.Join(dir, "expsync"))...)
	if code != 0 || !strings.Contains(out, "results commit") {
		t.Fatalf("signed commit: exit %d\n%s\n%s", code, out, errOut)
	}
	code, out, errOut = labCLI(t, append(base, "--commit-signing-key", filepath.Join(dir, "expsync"))...)
	if code != 0 || !strings.Contains(out, "nothing to do") {
		t.Errorf("expsync's own signed results commit was refused: exit %d\n%s\n%s", code, out, errOut)
	}

	// An unsigned commit on top: nothing runs, exit 1 with the reason.
	head := l.commitUnsigned("unsigned", map[string]string{"code/README.md": "changed\n"})
	code, out, errOut = labCLI(t, base...)
	if code != 1 || !strings.Contains(errOut, "may not run") || l.Head() != head {
		t.Errorf("unsigned commit: exit %d\n%s\n%s", code, out, errOut)
	}
}

// TestRunInvalidExperimentNamesTheLine: a commit that does not plan runs
// nothing, commits nothing and names the file, line and column.
func TestRunInvalidExperimentNamesTheLine(t *testing.T) {
	l := newLab(t)
	key, _ := labKeyPair(t)
	t.Setenv("EXPSYNC_PASSWORD", "")
	head := l.Commit("bad", map[string]string{"experiments/bad.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: bad}\nspec:\n  image: host\n  comand: [\"true\"]\n"})
	code, out, errOut := labCLI(t, "run", l.URL(), "--allow-http", "--key", key, "--store", t.TempDir(), "--state", t.TempDir(), "--progress", "none")
	if code != 1 || !strings.Contains(errOut, "experiments/bad.yaml:6:") || l.Head() != head {
		t.Errorf("exit %d\n%s\n%s", code, out, errOut)
	}
}
