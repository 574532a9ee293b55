package gitsource

import (
	"os"
	"strings"
	"testing"
)

// TestVerificationStopsAtOlderTrustedHistory: a pull request branched from
// main before main moved on is based on trusted history that is not main's
// head; when the cache holds that history (main was fetched at both
// heads), the walk must stop there and not ask main's unsigned commits
// for signatures.
func TestVerificationStopsAtOlderTrustedHistory(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("m0", map[string]string{"a.txt": "0"})
	m1 := p.commit("m1", map[string]string{"a.txt": "1"})
	p.push("main")
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
		Refs:   []RefPolicy{{Pattern: "main", Trusted: true}, {Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
		Verify: &VerifyPolicy{SSHKeys: []string{string(pub)}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := testCtx(t)
	snapshotMain := func() {
		t.Helper()
		if _, err := src.Poll(ctx); err != nil {
			t.Fatal(err)
		}
		sn, err := src.Snapshot(ctx, "main", "")
		if err != nil {
			t.Fatal(err)
		}
		sn.Close()
	}
	snapshotMain()
	m2 := p.commit("m2", map[string]string{"a.txt": "2"})
	p.push("main")
	snapshotMain() // the cache now holds m1 and m2; main's head is m2

	runGit(t, p.dir, "reset", "-q", "--hard", m1)
	pr := p.commitWith(nil, "pr", map[string]string{"pr.txt": "x"},
		"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	p.push("--force", pr+":refs/heads/scratch")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/1/head", pr)
	ch, err := src.Poll(ctx)
	if err != nil || len(ch) != 1 || !ch[0].Runnable || !strings.Contains(ch[0].Reason, "1 new commit(s) verified") {
		t.Fatalf("pull request on main's previous head %s (main at %s): %+v, %v", m1[:8], m2[:8], ch, err)
	}
}
