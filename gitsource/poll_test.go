package gitsource

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestPollReportsNewMovedAndDeletedRefs(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("first", map[string]string{"a.txt": "a"})
	p.push("main")
	runGit(t, p.dir, "branch", "exp/one")
	p.push("exp/one")
	runGit(t, p.dir, "branch", "other") // not watched
	p.push("other")

	src := newSource(t, srv, "exps", RefPolicy{Pattern: "main", Trusted: true}, RefPolicy{Pattern: "exp/*", Trusted: true})
	ctx := testCtx(t)

	got, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []RefChange{
		{Ref: "refs/heads/exp/one", New: c1, Trusted: true, Runnable: true, Reason: "trusted ref", ResultsBranch: "exp/one"},
		{Ref: "refs/heads/main", New: c1, Trusted: true, Runnable: true, Reason: "trusted ref", ResultsBranch: "main"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("first poll (-want +got):\n%s", d)
	}

	// Unchanged: nothing reported, one listing, no fetch.
	before := src.Stats()
	got, err = src.Poll(ctx)
	if err != nil || len(got) != 0 {
		t.Fatalf("unchanged poll = %v, %v; want nothing", got, err)
	}
	after := src.Stats()
	if after.Lists-before.Lists != 1 || after.Fetches != before.Fetches {
		t.Fatalf("unchanged poll cost %d lists and %d fetches; want 1 and 0", after.Lists-before.Lists, after.Fetches-before.Fetches)
	}

	// main moves, exp/one is deleted, exp/two appears.
	c2 := p.commit("second", map[string]string{"b.txt": "b"})
	p.push("main")
	p.push(":exp/one")
	runGit(t, p.dir, "branch", "exp/two")
	p.push("exp/two")
	got, err = src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want = []RefChange{
		{Ref: "refs/heads/exp/one", Old: c1, Trusted: true, Reason: "ref deleted", ResultsBranch: "exp/one"},
		{Ref: "refs/heads/exp/two", New: c2, Trusted: true, Runnable: true, Reason: "trusted ref", ResultsBranch: "exp/two"},
		{Ref: "refs/heads/main", Old: c1, New: c2, Trusted: true, Runnable: true, Reason: "trusted ref", ResultsBranch: "main"},
	}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("second poll (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"refs/heads/main": c2, "refs/heads/exp/two": c2}, src.Observed()); d != "" {
		t.Fatalf("observed (-want +got):\n%s", d)
	}
	if src.Stats().Fetches != 0 {
		t.Fatalf("polling trusted refs fetched %d times; want 0", src.Stats().Fetches)
	}
}

func TestPollPullRequestRefsGoToResultsBranch(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("first", map[string]string{"a.txt": "a"})
	p.push("main")
	// A pull request ref is written by the forge, not pushable by users.
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/7/head", c1)

	src := newSource(t, srv, "exps", RefPolicy{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "expsync/results"})
	got, err := src.Poll(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	want := []RefChange{{Ref: "refs/pull/7/head", New: c1, Trusted: true, Runnable: true, Reason: "trusted ref", ResultsBranch: "expsync/results"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	if _, err := (&Repository{Refs: []RefPolicy{{Pattern: "refs/pull/*/head"}}}).ResultsBranchFor("refs/pull/7/head"); err == nil {
		t.Fatal("a pull request ref without a results branch must be refused")
	}
}

func TestPollWhenTheLastBranchIsDeleted(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	runGit(t, srv.barePath("exps"), "config", "receive.denyDeleteCurrent", "ignore")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("first", map[string]string{"a.txt": "a"})
	p.push("main")
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	if _, err := src.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	p.push(":main") // the repository is empty again
	got, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []RefChange{{Ref: "refs/heads/main", Old: c1, Trusted: true, Reason: "ref deleted", ResultsBranch: "main"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	// Nothing observed any more: an empty repository is now an error again.
	if _, err := src.Poll(ctx); !errors.Is(err, ErrEmptyRepository) {
		t.Fatalf("poll of an empty repository: err = %v", err)
	}
}

// Annotated tags are reported and snapshotted as the commit they name.
func TestWatchedAnnotatedTags(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("first", map[string]string{"a.txt": "v1"})
	runGit(t, p.dir, "tag", "-a", "v1", "-m", "release 1")
	p.push("main", "v1")
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "refs/tags/v*", Trusted: true, ResultsBranch: "results"})
	ctx := testCtx(t)
	got, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []RefChange{{Ref: "refs/tags/v1", New: c1, Trusted: true, Runnable: true, Reason: "trusted ref", ResultsBranch: "results"}}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("(-want +got):\n%s", d)
	}
	for _, commit := range []string{c1, ""} {
		sn, err := src.Snapshot(ctx, "refs/tags/v1", commit)
		if err != nil {
			t.Fatal(err)
		}
		if sn.Commit != c1 {
			t.Errorf("snapshot of tag v1 (commit %q) = %s, want %s", commit, sn.Commit, c1)
		}
		sn.Close()
	}
}
