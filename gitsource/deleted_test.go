package gitsource

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/expsync/expsync/tree"
	"github.com/google/go-cmp/cmp"
)

// branchOnServer returns the branch's head on the server, "" when absent.
func branchOnServer(t *testing.T, srv *server, name, branch string) string {
	t.Helper()
	out := runGit(t, t.TempDir(), "ls-remote", srv.peerURL(name), "refs/heads/"+branch)
	head, _, _ := strings.Cut(out, "\t")
	return head
}

// checkBranchDeleted asserts a refused commit-back: ErrBranchDeleted, the
// repository and branch named, no secret, nothing pushed.
func checkBranchDeleted(t *testing.T, res CommitResult, err error, srv *server, branch string) {
	t.Helper()
	if !errors.Is(err, ErrBranchDeleted) || res.Pushed {
		t.Fatalf("result = %+v, err = %v; want ErrBranchDeleted and nothing pushed", res, err)
	}
	msg := err.Error()
	if !strings.Contains(msg, srv.url("exps")) || !strings.Contains(msg, branch) || strings.Contains(msg, testPassword) {
		t.Errorf("error %q must name the repository and the branch %s, and no secret", msg, branch)
	}
	if h := branchOnServer(t, srv, "exps", branch); h != "" {
		t.Errorf("branch %s was re-created at %s", branch, h)
	}
}

// A branch deleted (a merged pull request's) while expsync commits
// its results in batches must not be resurrected by the next batch.
func TestCommitBackNeverRecreatesADeletedBranch(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("start", map[string]string{"experiments/a.yaml": "x"})
	p.push("main:exp/a")
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "exp/*", Trusted: true})
	ctx := testCtx(t)
	batch := func(s *Source, n string, create bool) (CommitResult, error) {
		return s.CommitBack(ctx, CommitRequest{Branch: "exp/a", Create: create, Message: "batch " + n, Author: bot,
			Files: map[string][]byte{"results/" + n + "/run.json": []byte("{}")}}, nil)
	}
	first, err := batch(src, "1", false)
	if err != nil || !first.Pushed || !first.BranchExists {
		t.Fatalf("first batch = %+v, %v", first, err)
	}

	p.push(":exp/a") // the user deletes the branch

	res, err := batch(src, "2", false)
	checkBranchDeleted(t, res, err, srv, "exp/a")
	// Another Source (another process) neither.
	res, err = batch(newSource(t, srv, "exps", RefPolicy{Pattern: "exp/*", Trusted: true}), "3", false)
	checkBranchDeleted(t, res, err, srv, "exp/a")
}

// A results branch: the first batch creates it (Create), the caller stops
// setting Create once a result says BranchExists, so after the user
// deletes the branch the next batch does not bring it back.
func TestCommitBackResultsBranchCreatedOnceNotRecreated(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	pr := p.commit("pr", map[string]string{"experiments/pi.yaml": "x"})
	p.push("main")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/3/head", pr)
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "results/pr-3"})
	ctx := testCtx(t)
	create := true // what a batching caller keeps
	batch := func(n string) (CommitResult, error) {
		res, err := src.CommitBack(ctx, CommitRequest{Branch: "results/pr-3", Create: create, StartFrom: "refs/pull/3/head",
			Message: "batch " + n, Author: bot, Files: map[string][]byte{"results/" + n + "/run.json": []byte("{}")}}, nil)
		create = create && !res.BranchExists
		return res, err
	}
	first, err := batch("1")
	if err != nil || !first.Pushed || !first.BranchExists || first.Parent != pr {
		t.Fatalf("first batch = %+v, %v", first, err)
	}
	if h := branchOnServer(t, srv, "exps", "results/pr-3"); h != first.Commit {
		t.Fatalf("results branch at %q, want the first batch %s", h, first.Commit)
	}
	p.push(":results/pr-3")
	res, err := batch("2")
	checkBranchDeleted(t, res, err, srv, "results/pr-3")
}

// The branch is deleted after CommitBack fetched its head and before the
// push: the push (a lease on that head) fails, and the retry finds the
// branch gone instead of creating it.
func TestCommitBackBranchDeletedDuringTheCommit(t *testing.T) {
	// Also when the caller allowed creating the branch: it was there at
	// the first attempt, so its absence at the second is a deletion.
	for _, create := range []bool{false, true} {
		t.Run(fmt.Sprintf("create=%v", create), func(t *testing.T) { testBranchDeletedDuringTheCommit(t, create) })
	}
}

func testBranchDeletedDuringTheCommit(t *testing.T, create bool) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("start", map[string]string{"experiments/a.yaml": "x"})
	p.push("main", "main:exp/a")
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "exp/*", Trusted: true})
	merges := 0
	deleteFirst := func(base tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
		merges++
		if merges == 1 {
			p.push(":exp/a")
		}
		return ours, nil
	}
	res, err := src.CommitBack(testCtx(t), CommitRequest{Branch: "exp/a", Create: create, Message: "results", Author: bot,
		Files: map[string][]byte{"results/r/run.json": []byte("{}")}}, deleteFirst)
	checkBranchDeleted(t, res, err, srv, "exp/a")
	if res.Attempts != 2 || merges != 1 {
		t.Errorf("attempts = %d, merges = %d; want the lost push, then the deletion found at the retry", res.Attempts, merges)
	}
}

// A branch expected to be new is created only while it is absent: if
// another writer creates it meanwhile — even at the very commit ours starts
// from, which would make our push a fast-forward — the change is rebuilt on
// their branch.
func TestCommitBackCreatesABranchOnlyWhileAbsent(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	pr := p.commit("pr", map[string]string{"experiments/pi.yaml": "x"})
	p.push("main")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/3/head", pr)
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "results/pr-3"})
	var heads []string
	merge := func(base tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
		if len(heads) == 0 {
			p.push("main:results/pr-3") // another writer creates the branch
		}
		heads = append(heads, branchOnServer(t, srv, "exps", "results/pr-3"))
		return ours, nil
	}
	res, err := src.CommitBack(testCtx(t), CommitRequest{Branch: "results/pr-3", Create: true, StartFrom: "refs/pull/3/head",
		Message: "results", Author: bot, Files: map[string][]byte{"results/r/run.json": []byte("{}")},
		Retry: RetryPolicy{BaseDelay: 1}}, merge)
	if err != nil || !res.Pushed || res.Attempts != 2 || res.Parent != pr {
		t.Fatalf("result = %+v, %v; want the creation refused once, then a commit on the other writer's branch", res, err)
	}
	if d := cmp.Diff([]string{pr, pr}, heads); d != "" {
		t.Errorf("branch heads seen by the merges (-want +got):\n%s", d)
	}
	if d := cmp.Diff([]string{res.Commit, pr}, reclone(t, srv.peerURL("exps"), "results/pr-3").log(t)); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
}
