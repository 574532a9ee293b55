package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gitea "gitea.dev/sdk"

	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/internal/giteatest"
)

const forgeSweep = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: sweep
spec:
  image: host
  command: ["sh", "train.sh", "{{params.seed}}"]
  sweep:
    matrix:
      seed: [SEEDS]
  metrics: out/metrics.json
  timeout: 1m
`

// forgeTrain sleeps a little so a pull request's runs are in flight long
// enough to be seen pending.
func forgeTrain(factor string) string {
	return "sleep 1\nmkdir -p out\nawk -v s=\"$1\" 'BEGIN { printf \"{\\\"loss\\\": %g}\\n\", " + factor + " * s }' > out/metrics.json\n"
}

// forgePeer is a contributor's clone of the Gitea repository, signing its
// commits with an SSH key serve allows for pull requests.
type forgePeer struct {
	t         *testing.T
	dir, push string
	signKey   string
}

func (p *forgePeer) git(args ...string) string {
	p.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = p.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "HOME="+p.dir, "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Peer", "GIT_AUTHOR_EMAIL=peer@example.org", "GIT_COMMITTER_NAME=Peer", "GIT_COMMITTER_EMAIL=peer@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		p.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// commit writes files, commits (signed when sign) and pushes to branch.
func (p *forgePeer) commit(branch, msg string, sign bool, files map[string]string) string {
	p.t.Helper()
	for name, content := range files {
		writeFile(p.t, p.dir, name, content)
	}
	p.git("add", "-A")
	args := []string{"commit", "-q", "-m", msg}
	if sign {
		args = append([]string{"-c", "gpg.format=ssh", "-c", "user.signingkey=" + p.signKey}, append(args, "-S")...)
	}
	p.git(args...)
	p.git("push", "-q", p.push, "HEAD:refs/heads/"+branch)
	return p.git("rev-parse", "HEAD")
}

// TestServePullRequestStatusesAndCommentOnGitea is the pull-request loop
// against a real forge: Gitea (built from the Go module proxy) on loopback,
// a repository with a sweep, `expsync serve` watching main and
// refs/pull/*/head. A signed pull request gets a pending status with counts
// while its runs are in flight, then success with a link to its results
// branch and one comment holding the diff against main; a second push to
// the pull request leaves exactly one comment, now with the new diff. A
// pull request that forges a results folder gets a failure status naming
// it; one with unsigned commits a failure saying it may not run.
func TestServePullRequestStatusesAndCommentOnGitea(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Skip("ssh-keygen (OpenSSH) is needed to sign the pull request's commits")
	}
	g := giteatest.Start(t)
	ctx := context.Background()
	admin, err := gitea.NewClient(g.URL, gitea.SetToken(g.Token), gitea.SetGiteaVersion(""))
	if err != nil {
		t.Fatal(err)
	}
	owner := g.User
	if _, _, err := admin.Repositories.CreateRepo(ctx, gitea.CreateRepoOption{Name: "exps", DefaultBranch: "main"}); err != nil {
		t.Fatalf("create repository: %v", err)
	}
	keys := t.TempDir()
	if out, err := exec.Command("ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "contributor", "-f", filepath.Join(keys, "contributor")).CombinedOutput(); err != nil {
		t.Fatalf("ssh-keygen: %v %s", err, out)
	}
	p := &forgePeer{t: t, dir: t.TempDir(), push: g.RepoURL(owner, "exps"), signKey: filepath.Join(keys, "contributor")}
	p.git("init", "-q", "-b", "main")
	experiments := p.commit("main", "sweep", false, map[string]string{
		"experiments/sweep/sweep.yaml": strings.Replace(forgeSweep, "SEEDS", "1, 2", 1),
		"experiments/sweep/train.sh":   forgeTrain("1"),
	})

	key, _ := labKeyPair(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "serve.yaml")
	writeFile(t, dir, "serve.yaml", "store: store\nstate: state\nkey: "+key+"\ninterval: 1s\nbatchInterval: 1s\n"+
		"repositories:\n"+
		"  - url: "+g.PlainRepoURL(owner, "exps")+"\n"+
		"    allowHTTP: true\n"+
		"    auth: {usernameEnv: FORGE_TEST_USER, passwordEnv: FORGE_TEST_PASSWORD}\n"+
		"    refs:\n"+
		"      - {pattern: main, trusted: true}\n"+
		"      - {pattern: \"refs/pull/*/head\", trusted: false, resultsBranch: \"expsync/results/pr-{{number}}\"}\n"+
		"    verify: {sshKeyFiles: ["+filepath.Join(keys, "contributor.pub")+"]}\n"+
		"    forge: {kind: gitea}\n")
	t.Setenv("FORGE_TEST_USER", g.User)
	t.Setenv("FORGE_TEST_PASSWORD", g.Password)
	t.Setenv("EXPSYNC_FORGE_TOKEN", g.Token)
	serve := startServe(t, config)
	defer serve.stop(t)

	// A pull request: new code (the loss doubles) and one more seed. It
	// branches off the experiments commit, before main's results land, so
	// its merge base holds no results: the base's runs are the merge
	// base's, their results are read from main as it is when the report is
	// made. (CI branched there by accident: the test read main's head
	// before Gitea had indexed the first push, got "", and took the
	// experiments commit for main's results commit.)
	p.git("checkout", "-q", "-b", "feature")
	head1 := p.commit("feature", "double the loss, add seed 3", true, map[string]string{
		"experiments/sweep/sweep.yaml": strings.Replace(forgeSweep, "SEEDS", "1, 2, 3", 1),
		"experiments/sweep/train.sh":   forgeTrain("2"),
	})
	// Opened once main holds both runs' results (serve may commit them in
	// more than one commit), so the report compares with them.
	waitFor(t, "main's results of both runs", 3*time.Minute, func() bool {
		head := g.BranchHead(t, owner, "exps", "main")
		return head != "" && head != experiments && g.Folders(t, owner, "exps", head, "results/sweep") == 2
	}, serve.output)
	g.OpenPullRequest(t, owner, "exps", "feature", "main", "double the loss")
	final := waitForFinalStatus(t, admin, owner, head1, serve)
	if final.State != gitea.StatusSuccess || !strings.Contains(final.Description, "3 runs succeeded; 2 changed, 1 added, 0 removed against main") {
		t.Errorf("final status of the pull request: %s %q", final.State, final.Description)
	}
	if want := g.URL + owner + "/exps/src/branch/expsync/results/pr-1/results/README.md"; final.TargetURL != want {
		t.Errorf("status links %q, want %q", final.TargetURL, want)
	}
	statuses, _, err := admin.Repositories.ListStatuses(ctx, owner, "exps", head1, gitea.ListStatusesOption{})
	if err != nil {
		t.Fatal(err)
	}
	sawPending := false
	for _, s := range statuses {
		if s.State == gitea.StatusPending && strings.Contains(s.Description, "of 3 runs done") {
			sawPending = true
		}
	}
	if !sawPending {
		t.Errorf("no pending status with counts among %d statuses", len(statuses))
	}
	comment := theComment(t, admin, owner, 1, 1)
	for _, want := range []string{"2 changed, 1 added", "| 1 | ", "1 → 2 (+1, +100.00%)", "[`expsync/results/pr-1`](" + g.URL + owner + "/exps/src/branch/expsync/results/pr-1/results/README.md)"} {
		if !strings.Contains(comment.Body, want) {
			t.Errorf("the comment lacks %q:\n%s", want, comment.Body)
		}
	}

	// A second push to the pull request: still one comment, with the new diff.
	head2 := p.commit("feature", "triple the loss", true, map[string]string{"experiments/sweep/train.sh": forgeTrain("3")})
	final = waitForFinalStatus(t, admin, owner, head2, serve)
	if final.State != gitea.StatusSuccess {
		t.Errorf("final status after the second push: %s %q", final.State, final.Description)
	}
	waitFor(t, "the comment to show the new diff", time.Minute, func() bool {
		return strings.Contains(theComment(t, admin, owner, 1, 1).Body, "1 → 3 (+2, +200.00%)")
	}, serve.output)
	if again := theComment(t, admin, owner, 1, 1); again.ID != comment.ID {
		t.Errorf("the comment was replaced (%d, was %d): it must be edited in place", again.ID, comment.ID)
	}

	// A pull request forging a results folder (and changing nothing else).
	p.git("checkout", "-q", "main")
	p.git("pull", "-q", p.push, "main")
	p.git("checkout", "-q", "-b", "forged")
	forgedID := strings.Repeat("f0", 32)
	head3 := p.commit("forged", "results, trust me", true, map[string]string{
		"results/sweep/" + forgedID + "/run.json":     `{"runID": "` + forgedID + `", "experiment": "sweep", "status": "Succeeded", "params": {"seed": 9}}`,
		"results/sweep/" + forgedID + "/metrics.json": `{"loss": 0}`,
	})
	g.OpenPullRequest(t, owner, "exps", "forged", "main", "forged")
	final = waitForFinalStatus(t, admin, owner, head3, serve)
	if final.State != gitea.StatusFailure || !strings.Contains(final.Description, "1 results folder did not verify: results/sweep/"+forgedID) {
		t.Errorf("status of the forging pull request: %s %q", final.State, final.Description)
	}
	if c := theComment(t, admin, owner, 2, 1); strings.Contains(c.Body, "| 9 |") {
		t.Errorf("the comment shows the forged run:\n%s", c.Body)
	}

	// An unsigned pull request may not run.
	p.git("checkout", "-q", "main")
	p.git("checkout", "-q", "-b", "unsigned")
	head4 := p.commit("unsigned", "unsigned", false, map[string]string{"experiments/sweep/train.sh": forgeTrain("5")})
	g.OpenPullRequest(t, owner, "exps", "unsigned", "main", "unsigned")
	final = waitForFinalStatus(t, admin, owner, head4, serve)
	if final.State != gitea.StatusFailure || !strings.Contains(final.Description, "may not run") {
		t.Errorf("status of the unsigned pull request: %s %q", final.State, final.Description)
	}
	if strings.Contains(serve.output(), g.Token) {
		t.Errorf("the forge token is in serve's log")
	}
}

// waitForFinalStatus waits until commit's expsync status is success or
// failure and returns it.
func waitForFinalStatus(t *testing.T, admin *gitea.Client, owner, commit string, serve *serveProc) *gitea.Status {
	t.Helper()
	var final *gitea.Status
	waitFor(t, "a final status on "+commit[:10], 4*time.Minute, func() bool {
		c, _, err := admin.Repositories.GetCombinedStatus(context.Background(), owner, "exps", commit)
		if err != nil {
			return false
		}
		for _, s := range c.Statuses {
			if s.Context == "expsync" && (s.State == gitea.StatusSuccess || s.State == gitea.StatusFailure) {
				final = s
				return true
			}
		}
		return false
	}, serve.output)
	return final
}

// theComment returns the one comment holding expsync's marker on pull
// request n, failing unless there are exactly want.
func theComment(t *testing.T, admin *gitea.Client, owner string, n int64, want int) *gitea.Comment {
	t.Helper()
	cs, _, err := admin.Issues.ListIssueComments(context.Background(), owner, "exps", n, gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var found []*gitea.Comment
	for _, c := range cs {
		if strings.Contains(c.Body, forge.Marker("expsync")) {
			found = append(found, c)
		}
	}
	if len(found) != want {
		t.Fatalf("pull request %d has %d comments with expsync's marker, want %d", n, len(found), want)
	}
	return found[0]
}
