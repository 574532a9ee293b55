package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// ignoredJunkRepo is a set-up a user met: the examples committed with a
// .gitignore for Python's __pycache__ and *.tmp, then the junk a local run
// leaves behind written into the working folder. git runs with a temporary
// HOME that the test process shares, so both read the same (empty) global
// excludes.
func ignoredJunkRepo(t *testing.T) (repo string, git func(dir string, args ...string) string) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git CLI commits the repository the IDs are checked against and is not installed")
	}
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	git = func(dir string, args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.org",
			"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	repo = t.TempDir()
	if err := os.CopyFS(repo, os.DirFS(examplesDir)); err != nil {
		t.Fatal(err)
	}
	writeRenderFile(t, filepath.Join(repo, ".gitignore"), "__pycache__/\n*.tmp\n")
	git(repo, "init", "-q")
	git(repo, "add", "-A")
	git(repo, "commit", "-qm", "examples")
	writeRenderFile(t, filepath.Join(repo, "experiments/pi/__pycache__/estimate.cpython-312.pyc"), "junk\n")
	writeRenderFile(t, filepath.Join(repo, "experiments/pi/scratch.tmp"), "junk\n")
	writeRenderFile(t, filepath.Join(repo, "experiments/wordfreq/__pycache__/x.pyc"), "junk\n")
	return repo, git
}

var renderedContext = regexp.MustCompile(`\\"context\\":\{\\"path\\":\\"([^\\"]*)\\",\\"tree\\":\\"([0-9a-f]{40})\\"`)

// TestRenderWorkingFolderIgnoresJunkLikeTheCommit reproduces F15: files
// .gitignore excludes do not change the context trees, run IDs or Job
// names render shows; they equal those of a clean clone of the commit.
func TestRenderWorkingFolderIgnoresJunkLikeTheCommit(t *testing.T) {
	repo, git := ignoredJunkRepo(t)
	out, stderr, code := runRender(t, repo, "-o", "json")
	if code != 0 {
		t.Fatalf("render: exit %d\n%s", code, stderr)
	}
	contexts := map[string]string{}
	for _, m := range renderedContext.FindAllStringSubmatch(out, -1) {
		contexts[m[1]] = m[2]
	}
	if contexts["experiments/pi"] == "" {
		t.Fatalf("no context tree for experiments/pi in render's output:\n%.2000s", out)
	}
	for path, got := range contexts {
		if want := git(repo, "rev-parse", "HEAD:"+path); got != want {
			t.Errorf("context %s: render shows tree %s, the commit has %s", path, got, want)
		}
	}
	clone := filepath.Join(t.TempDir(), "clone")
	git(repo, "clone", "-q", repo, clone)
	fromClone, stderr, code := runRender(t, clone, "-o", "json")
	if code != 0 {
		t.Fatalf("render of the clone: exit %d\n%s", code, stderr)
	}
	if diff := cmp.Diff(fromClone, out); diff != "" {
		t.Errorf("render of the working folder differs from render of a clean clone (-clone +working):\n%.3000s", diff)
	}
}

// TestValidateNotesUntrackedContextFiles: ignored junk makes no note; a
// file Git neither tracks nor ignores does, naming it, because the IDs
// include it and a commit without it would not.
func TestValidateNotesUntrackedContextFiles(t *testing.T) {
	repo, _ := ignoredJunkRepo(t)
	code, out := runValidate(t, repo)
	if code != 0 || strings.Contains(out, "note:") {
		t.Fatalf("validate with ignored junk only: exit %d, want 0 and no note:\n%s", code, out)
	}
	writeRenderFile(t, filepath.Join(repo, "experiments/pi/helper.py"), "x = 1\n")
	code, out = runValidate(t, repo)
	want := repo + ": note: 1 untracked file(s) in run contexts are part of these run IDs: " +
		filepath.Join(repo, "experiments/pi/helper.py") + "; `git add` them or list them in .gitignore, or the IDs of the commit will differ\n"
	if code != 0 || !strings.HasSuffix(out, want) {
		t.Errorf("validate: exit %d\n%s\nwant it to end with\n%s", code, out, want)
	}
	if code, out := runValidate(t, "--format", "json", repo); code != 0 || strings.Contains(out, "note") {
		t.Errorf("--format json: exit %d, want 0 and no note (its lines are problems):\n%s", code, out)
	}
	if code, out := runValidate(t, "--format", "github", repo); code != 0 || !strings.Contains(out, "::notice::1 untracked file(s)") {
		t.Errorf("--format github: exit %d, want a ::notice:: line:\n%s", code, out)
	}
}
