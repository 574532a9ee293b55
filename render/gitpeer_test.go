package render_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// TestWorkingFolderIDsMatchGitCommit plans a working folder and checks every
// Git object ID its runs record (context tree, spec blob, template blobs,
// input blobs) against `git rev-parse HEAD:<path>` of a commit of the same
// files, made by the git CLI. Run IDs are computed from these, so a working
// folder and its commit plan the same runs.
func TestWorkingFolderIDsMatchGitCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git CLI is the peer these IDs are checked against and is not installed")
	}
	dir := t.TempDir()
	copyTree(t, "../testdata/validate/valid/repo", dir)
	git := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q")
	git("add", "-A")
	git("commit", "-q", "-m", "experiments")

	d, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	res, err := render.Plan(d, render.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) == 0 {
		t.Fatal("no runs")
	}
	checked := 0
	check := func(what, path, got string) {
		if want := git("rev-parse", "HEAD:"+path); got != want {
			t.Errorf("%s %s: %s, git says %s", what, path, got, want)
		}
		checked++
	}
	for _, r := range res.Runs {
		check("context", r.Contract.Context.Path, r.Contract.Context.Tree)
		check("spec", r.SpecPath, r.SpecBlob)
		for _, tpl := range r.Templates {
			check("template", tpl.Path, tpl.Blob)
		}
		for _, in := range r.Contract.Inputs {
			if in.RepoPath != "" {
				check("input", in.RepoPath, in.GitBlob)
			}
		}
	}
	if root, _ := tree.TreeHash(d, ""); string(root) != git("rev-parse", "HEAD^{tree}") {
		t.Errorf("root tree %s differs from the commit's", root)
	}
	t.Logf("%d object IDs of %d runs match the commit", checked, len(res.Runs))
}

func copyTree(t *testing.T, from, to string) {
	t.Helper()
	err := filepath.WalkDir(from, func(p string, e os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(from, p)
		if e.IsDir() {
			return os.MkdirAll(filepath.Join(to, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}
