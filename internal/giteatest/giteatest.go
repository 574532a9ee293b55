// Package giteatest starts a real Gitea on loopback for tests, through
// hack/forge/gitea.sh (which hack/forge/build-gitea.sh feeds), and stops
// it when the test ends. It is not used by expsync itself.
//
// A machine without the Gitea binary skips the test with the reason and
// the command that builds it; under CI=true a missing Gitea fails the test
// instead: CI builds it (.ci/run) and must never skip this tier.
package giteatest

import (
	"bufio"
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	gitea "gitea.dev/sdk"
)

// Forge is a running Gitea with an admin account.
type Forge struct {
	URL      string // http://127.0.0.1:PORT/
	User     string
	Password string
	Token    string // an API token of User (all scopes)
	dir      string
}

// Binary is where the Gitea binary is looked for.
func Binary() string {
	if b := os.Getenv("EXPSYNC_GITEA_BIN"); b != "" {
		return b
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "expsync", "gitea", "v1.27.3", "gitea")
}

// script is hack/forge/gitea.sh of this checkout.
func script() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "..", "hack", "forge", "gitea.sh")
}

// Start starts a Gitea for t (or skips t, see the package comment).
func Start(t testing.TB) *Forge {
	t.Helper()
	if _, err := os.Stat(Binary()); err != nil {
		msg := "no Gitea at " + Binary() + ": build it once with hack/forge/build-gitea.sh (about 14 minutes on 2 cores; .ci/run does)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg + "; CI must run the forge tier")
		}
		t.Skip(msg)
	}
	cmd := exec.Command("bash", script(), "start")
	cmd.Env = append(os.Environ(), "EXPSYNC_GITEA_BIN="+Binary())
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("hack/forge/gitea.sh start: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	f := &Forge{}
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		k, v, _ := strings.Cut(sc.Text(), "=")
		switch k {
		case "GITEA_URL":
			f.URL = v
		case "GITEA_USER":
			f.User = v
		case "GITEA_PASSWORD":
			f.Password = v
		case "GITEA_TOKEN":
			f.Token = v
		case "GITEA_DIR":
			f.dir = v
		}
	}
	if f.URL == "" || f.Token == "" || f.dir == "" {
		t.Fatalf("hack/forge/gitea.sh start printed no URL, token or folder:\n%s", stdout.String())
	}
	t.Cleanup(func() { f.Stop(t) })
	return f
}

// Stop ends the Gitea and removes everything it left (also called at the
// end of the test).
func (f *Forge) Stop(t testing.TB) {
	if f.dir == "" {
		return
	}
	if out, err := exec.Command("bash", script(), "stop", f.dir).CombinedOutput(); err != nil {
		t.Errorf("hack/forge/gitea.sh stop: %v\n%s", err, out)
	}
	f.dir = ""
}

// Dir is the instance's folder (gone after Stop).
func (f *Forge) Dir() string { return f.dir }

// RepoURL is the HTTP clone URL of owner/name with the admin's credentials.
func (f *Forge) RepoURL(owner, name string) string {
	u := strings.TrimSuffix(f.URL, "/")
	return strings.Replace(u, "http://", "http://"+f.User+":"+f.Password+"@", 1) + "/" + owner + "/" + name + ".git"
}

// PlainRepoURL is the clone URL without credentials.
func (f *Forge) PlainRepoURL(owner, name string) string {
	return strings.TrimSuffix(f.URL, "/") + "/" + owner + "/" + name + ".git"
}

// Git runs the git CLI in dir as a peer would (fixed identity, no user
// configuration) and fails t on error; it returns the trimmed output.
func Git(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir, "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Peer", "GIT_AUTHOR_EMAIL=peer@example.org", "GIT_COMMITTER_NAME=Peer", "GIT_COMMITTER_EMAIL=peer@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// PushBranches makes a clone in a new folder with a commit on main and one
// more on feature, pushes both to owner/name (which must exist), waits
// until Gitea's API shows them (see WaitForBranch) and returns the clone
// and the two commits.
func (f *Forge) PushBranches(t testing.TB, owner, name string) (dir, base, head string) {
	t.Helper()
	dir = t.TempDir()
	write := func(content string) {
		if err := os.WriteFile(filepath.Join(dir, "README.md"), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	Git(t, dir, "init", "-q", "-b", "main")
	write("base\n")
	Git(t, dir, "add", "-A")
	Git(t, dir, "commit", "-q", "-m", "base")
	Git(t, dir, "push", "-q", f.RepoURL(owner, name), "main")
	base = Git(t, dir, "rev-parse", "HEAD")
	Git(t, dir, "checkout", "-q", "-b", "feature")
	write("feature\n")
	Git(t, dir, "commit", "-q", "-am", "feature")
	Git(t, dir, "push", "-q", f.RepoURL(owner, name), "feature")
	head = Git(t, dir, "rev-parse", "HEAD")
	f.WaitForBranch(t, owner, name, "main", base)
	f.WaitForBranch(t, owner, name, "feature", head)
	return dir, base, head
}

// indexDeadline bounds the waits for Gitea's background indexing: a hang
// guard only, generous for a loaded CI machine.
const indexDeadline = 3 * time.Minute

// API is a client of Gitea's API as the admin.
func (f *Forge) API(t testing.TB) *gitea.Client {
	t.Helper()
	c, err := gitea.NewClient(f.URL, gitea.SetToken(f.Token), gitea.SetGiteaVersion(""))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// BranchHead is the commit Gitea's API shows for owner/name's branch, ""
// while it shows none.
func (f *Forge) BranchHead(t testing.TB, owner, name, branch string) string {
	t.Helper()
	b, _, err := f.API(t).Repositories.GetRepoBranch(context.Background(), owner, name, branch)
	if err != nil || b == nil || b.Commit == nil {
		return ""
	}
	return b.Commit.ID
}

// WaitForBranch waits until Gitea's API shows owner/name's branch at
// commit ("": at any commit). Gitea records a pushed branch in its
// database in the background after `git push` returns: until then its API
// answers 404 for the branch, and opening a pull request from or into it
// fails with "not found" (seen under load in CI).
func (f *Forge) WaitForBranch(t testing.TB, owner, name, branch, commit string) {
	t.Helper()
	deadline := time.Now().Add(indexDeadline)
	for {
		got := f.BranchHead(t, owner, name, branch)
		if got != "" && (commit == "" || got == commit) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Gitea's API still shows branch %s of %s/%s at %q after %s, want %q", branch, owner, name, got, indexDeadline, commit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// OpenPullRequest opens a pull request from branch head into branch base
// of owner/name once Gitea's API knows both branches (see WaitForBranch),
// and returns it.
func (f *Forge) OpenPullRequest(t testing.TB, owner, name, head, base, title string) *gitea.PullRequest {
	t.Helper()
	f.WaitForBranch(t, owner, name, base, "")
	f.WaitForBranch(t, owner, name, head, "")
	pr, _, err := f.API(t).PullRequests.CreatePullRequest(context.Background(), owner, name,
		gitea.CreatePullRequestOption{Head: head, Base: base, Title: title})
	if err != nil {
		t.Fatalf("open pull request %s into %s of %s/%s: %v", head, base, owner, name, err)
	}
	return pr
}

// Folders counts the folders below dir of owner/name at ref (a branch or
// a commit) through Gitea's API; 0 when dir does not exist there.
func (f *Forge) Folders(t testing.TB, owner, name, ref, dir string) int {
	t.Helper()
	entries, _, err := f.API(t).Repositories.ListContents(context.Background(), owner, name, ref, dir)
	if err != nil {
		return 0
	}
	n := 0
	for _, e := range entries {
		if e.Type == "dir" {
			n++
		}
	}
	return n
}
