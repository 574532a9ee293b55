package render_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// TestWorkingFolderIDsMatchGitCommit plans a working folder and checks every
// Git object ID its runs record (context tree, spec blob, template blobs,
// input blobs) against `git rev-parse HEAD:<path>` of a commit of the same
// files, made by the git CLI. Run IDs are computed from these, so a working
// folder and its commit plan the same runs.
//
// The identity's contextTree (the context without the spec files) is checked
// against git too: the paths removed from a scratch index with `git rm
// --cached`, then `git write-tree`.
func TestWorkingFolderIDsMatchGitCommit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git CLI is the peer these IDs are checked against and is not installed")
	}
	for _, repo := range []string{"../testdata/validate/valid/repo", "../examples/experiments"} {
		t.Run(filepath.Base(filepath.Dir(repo))+"/"+filepath.Base(repo), func(t *testing.T) { checkAgainstGit(t, repo) })
	}
}

func checkAgainstGit(t *testing.T, repo string) {
	dir := t.TempDir()
	copyTree(t, repo, dir)
	index := filepath.Join(t.TempDir(), "scratch-index")
	gitEnv := func(env []string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1",
			"GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.org", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.org"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git := func(args ...string) string { return gitEnv(nil, args...) }
	// withoutSpecs is what git names the context without the excluded paths.
	withoutSpecs := func(c contract.Context) string {
		scratch := []string{"GIT_INDEX_FILE=" + index}
		gitEnv(scratch, "read-tree", "HEAD")
		if len(c.Excluded) > 0 {
			args := []string{"rm", "--cached", "-q", "--"}
			for _, p := range c.Excluded {
				args = append(args, tree.Join(c.Path, p))
			}
			gitEnv(scratch, args...)
		}
		return gitEnv(scratch, "rev-parse", gitEnv(scratch, "write-tree")+":"+c.Path)
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
	checked, excluded := 0, 0
	check := func(what, path, got string) {
		if want := git("rev-parse", "HEAD:"+path); got != want {
			t.Errorf("%s %s: %s, git says %s", what, path, got, want)
		}
		checked++
	}
	for _, r := range res.Runs {
		check("context", r.Contract.Context.Path, r.Contract.Context.Tree)
		if want := withoutSpecs(r.Contract.Context); r.Contract.Identity.ContextTree != want {
			t.Errorf("identity contextTree of %s without %v: %s, git says %s", r.Contract.Context.Path, r.Contract.Context.Excluded, r.Contract.Identity.ContextTree, want)
		}
		if len(r.Contract.Context.Excluded) > 0 {
			excluded++
		}
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
	if strings.Contains(repo, "examples") && excluded == 0 {
		t.Error("no run of the examples has a spec file in its context; this case checks nothing new")
	}
	t.Logf("%d object IDs of %d runs match the commit; %d contexts without spec files", checked, len(res.Runs), excluded)
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
