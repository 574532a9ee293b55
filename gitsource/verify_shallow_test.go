package gitsource

import (
	"os"
	"strings"
	"testing"
)

// The verifier walks a ref's new commits back to what is already accepted
// and treats a commit missing from the cache as that boundary: the server
// leaves out what the cache's refs reach. That holds for history the
// verifier fetched itself, not for commits other operations fetched
// shallow (a snapshot, a commit-back starting a results branch from a pull
// request) or a cache fetched again after a drop: there, a parent is
// missing only because the fetch was shallow, and the unsigned commits
// behind it were never checked.

// TestVerificationOfAHeadCachedShallowByCommitBack: a results branch is
// started from a pull request's head (fetched shallow, unverified); at
// the next poll that head is verified, and the unsigned commit under it
// must be too.
func TestVerificationOfAHeadCachedShallowByCommitBack(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	main := p.commit("m1", map[string]string{"a.txt": "1"})
	p.push("main")
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	signed := func(msg string) string {
		return p.commitWith(nil, msg, map[string]string{msg + ".txt": msg},
			"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	}
	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
		Verify: &VerifyPolicy{SSHKeys: []string{string(pub)}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if _, err := src.Poll(ctx); err != nil {
		t.Fatal(err)
	}
	hidden := p.commit("unsigned", map[string]string{"evil.txt": "x"})
	head := signed("signed-on-top")
	p.push("--force", head+":refs/heads/scratch")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/1/head", head)
	if _, err := src.CommitBack(ctx, CommitRequest{Branch: "results", Create: true, StartFrom: "refs/pull/1/head",
		Files: map[string][]byte{"runs/r1/run.json": []byte("{}")}, Message: "results", Author: bot}, nil); err != nil {
		t.Fatal(err)
	}
	ch, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var pr *RefChange
	for i := range ch {
		if ch[i].Ref == "refs/pull/1/head" {
			pr = &ch[i]
		}
	}
	if pr == nil || pr.Runnable || !strings.Contains(pr.Reason, hidden+" by Peer <peer@example.org> is not signed") {
		t.Fatalf("signed head over an unsigned commit (main %s): %+v", main[:8], pr)
	}
}

// TestVerificationAfterACacheDrop: every watched ref needs verification
// (no trusted history to stop at). Commits verified before are remembered
// across a cache drop (corruption, the size limit); the commits pushed
// since, the unsigned one under the new head included, are all checked.
func TestVerificationAfterACacheDrop(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	signed := func(msg string) string {
		return p.commitWith(nil, msg, map[string]string{msg + ".txt": msg},
			"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	}
	first := signed("first")
	p.push("main")
	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}},
		Verify: &VerifyPolicy{Required: true, SSHKeys: []string{string(pub)}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	if ch, err := src.Poll(ctx); err != nil || len(ch) != 1 || !ch[0].Runnable {
		t.Fatalf("first poll: %+v, %v", ch, err)
	}
	hidden := p.commit("unsigned", map[string]string{"evil.txt": "x"})
	signed("signed-on-top")
	p.push("main")
	if err := src.dropCache(); err != nil {
		t.Fatal(err)
	}
	ch, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(ch) != 1 || ch[0].Runnable || !strings.Contains(ch[0].Reason, hidden+" by Peer <peer@example.org> is not signed") {
		t.Fatalf("signed head over an unsigned commit after a cache drop (verified before: %s): %+v", first[:8], ch)
	}
}
