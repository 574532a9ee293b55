package gitsource

import (
	"errors"
	"testing"
)

// TestCommitBackOnlyOntoHistoryThatRan (issue 9, item 2): results of a
// commit were merged onto whatever head the branch had at push time, also
// after a force-push to a history without that commit, so the branch
// showed runs its experiment files never planned. With Contains, a head
// that is the commit or descends from it takes the commit (also through a
// deeper fetch when the cache's history is cut); a rewritten one fails
// with ErrNotContained and nothing is pushed.
func TestCommitBackOnlyOntoHistoryThatRan(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	ran := p.commit("experiments", map[string]string{"experiments/a.yaml": "a"})
	p.push("main")
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	if _, err := src.Snapshot(ctx, "refs/heads/main", ran); err != nil {
		t.Fatal(err)
	}
	commit := func(files map[string][]byte) (CommitResult, error) {
		return src.CommitBack(ctx, CommitRequest{Branch: "main", Message: "results", Author: bot, Contains: ran, Files: files}, nil)
	}

	// A descendant: 30 commits pushed on top while the runs went on.
	for i := 0; i < 30; i++ {
		p.commit("more", map[string]string{"n.txt": string(rune('a' + i%26))})
	}
	p.push("main")
	res, err := commit(map[string][]byte{"results/a/1/run.json": []byte("{}")})
	if err != nil || !res.Pushed {
		t.Fatalf("onto a descendant: %+v, %v", res, err)
	}

	// A force-push to an unrelated history.
	runGit(t, p.dir, "checkout", "-q", "--orphan", "other")
	runGit(t, p.dir, "rm", "-rq", "--cached", ".")
	rewritten := p.commit("rewritten", map[string]string{"experiments/b.yaml": "b"})
	p.push("--force", "HEAD:main")
	_, err = commit(map[string][]byte{"results/a/2/run.json": []byte("{}")})
	if !errors.Is(err, ErrNotContained) {
		t.Fatalf("onto a rewritten branch: %v, want ErrNotContained", err)
	}
	if h := reclone(t, srv.peerURL("exps"), "main").head(t); h != rewritten {
		t.Fatalf("main moved to %s: a refused commit was pushed", h)
	}

	// The commit that ran comes back (its history rebased onto it).
	runGit(t, p.dir, "checkout", "-q", "-B", "main", ran)
	p.commit("on top again", map[string]string{"c.txt": "c"})
	p.push("--force", "HEAD:main")
	if res, err := commit(map[string][]byte{"results/a/3/run.json": []byte("{}")}); err != nil || !res.Pushed {
		t.Fatalf("after the commit came back: %+v, %v", res, err)
	}
}

// TestCommitBackContainsOnAShallowCache: a cache that holds the head
// alone (dropped, then fetched at depth 1) cannot show that the head
// contains the commit: the answer is no, never yes without proof (the
// caller keeps the results in its run cache and reconciles the head).
func TestCommitBackContainsOnAShallowCache(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	ran := p.commit("experiments", map[string]string{"experiments/a.yaml": "a"})
	for i := 0; i < 40; i++ {
		p.commit("more", map[string]string{"n.txt": string(rune('a' + i%26))})
	}
	p.push("main")
	head := reclone(t, srv.peerURL("exps"), "main").head(t)
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	_, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Message: "results", Author: bot, Contains: ran,
		Files: map[string][]byte{"results/a/1/run.json": []byte("{}")}}, nil)
	if !errors.Is(err, ErrNotContained) {
		t.Fatalf("%v, want ErrNotContained", err)
	}
	if h := reclone(t, srv.peerURL("exps"), "main").head(t); h != head {
		t.Errorf("main moved")
	}
	// With the head as the commit that ran, it goes through.
	if res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Message: "results", Author: bot, Contains: head,
		Files: map[string][]byte{"results/a/1/run.json": []byte("{}")}}, nil); err != nil || !res.Pushed {
		t.Fatalf("%+v, %v", res, err)
	}
}

// TestCommitBackContainsRefOfAResultsBranch: results of a pull request go
// to its results branch only while the pull request's ref contains the
// commit that ran; a force-pushed pull request takes none.
func TestCommitBackContainsRefOfAResultsBranch(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("main", map[string]string{"README": "x"})
	p.push("main")
	ran := p.commit("pr", map[string]string{"experiments/a.yaml": "a"})
	p.push("HEAD:pr-source")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/3/head", ran)
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "expsync/pr-{{number}}"})
	ctx := testCtx(t)
	req := CommitRequest{Branch: "expsync/pr-3", StartFrom: "refs/pull/3/head", Create: true, Message: "results", Author: bot,
		Contains: ran, ContainsRef: "refs/pull/3/head", Files: map[string][]byte{"results/a/1/run.json": []byte("{}")}}
	res, err := src.CommitBack(ctx, req, nil)
	if err != nil || !res.Pushed {
		t.Fatalf("first results of the pull request: %+v, %v", res, err)
	}
	// The pull request is force-pushed to another commit.
	runGit(t, p.dir, "checkout", "-q", "--orphan", "redo")
	other := p.commit("redo", map[string]string{"experiments/b.yaml": "b"})
	p.push("HEAD:redo")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/3/head", other)
	req.Create, req.Files = false, map[string][]byte{"results/a/2/run.json": []byte("{}")}
	before := reclone(t, srv.peerURL("exps"), "expsync/pr-3").head(t)
	if _, err := src.CommitBack(ctx, req, nil); !errors.Is(err, ErrNotContained) {
		t.Fatalf("after the pull request was force-pushed: %v, want ErrNotContained", err)
	}
	if h := reclone(t, srv.peerURL("exps"), "expsync/pr-3").head(t); h != before {
		t.Errorf("the results branch moved: a refused commit was pushed")
	}
}
