package gitsource

import (
	"os"
	"strings"
	"testing"
)

// TestVerificationOfAnUntrustedRefWithNoTrustedHistory: watching pull
// requests only (no trusted ref, nothing verified before), a pull
// request's first sight fetched its head alone and checked only it, so a
// signed head on an unsigned commit ran — the head alone was a baseline,
// which untrusted refs never take. Every commit down to trusted or verified
// history is checked; with none, the whole history.
func TestVerificationOfAnUntrustedRefWithNoTrustedHistory(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	_, keyFile, _ := sshSigningKey(t)
	pub, _ := os.ReadFile(keyFile + ".pub")
	signed := func(msg string) string {
		return p.commitWith(nil, msg, map[string]string{msg + ".txt": msg},
			"commit.gpgsign=true", "gpg.format=ssh", "user.signingkey="+keyFile)
	}
	root := signed("root")
	p.push("main")
	hidden := p.commit("unsigned", map[string]string{"evil.txt": "x"})
	bad := signed("signed-on-top")
	runGit(t, p.dir, "reset", "-q", "--hard", root)
	signed("good1")
	good := signed("good2")
	p.push("--force", bad+":refs/heads/scratch1")
	p.push("--force", good+":refs/heads/scratch2")
	bare := srv.barePath("exps")
	for _, c := range []struct {
		head     string
		runnable bool
		reason   string
	}{
		{bad, false, hidden + " by Peer <peer@example.org> is not signed"},
		{good, true, "3 new commit(s) verified"},
	} {
		runGit(t, bare, "update-ref", "refs/pull/1/head", c.head)
		src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), URLPolicy: URLPolicy{AllowHTTP: true},
			Refs:   []RefPolicy{{Pattern: "refs/pull/*/head", ResultsBranch: "results"}},
			Verify: &VerifyPolicy{SSHKeys: []string{string(pub)}}}, t.TempDir()) // fresh cache
		if err != nil {
			t.Fatal(err)
		}
		ch, err := src.Poll(testCtx(t))
		if err != nil {
			t.Fatal(err)
		}
		if len(ch) != 1 || ch[0].Runnable != c.runnable || !strings.Contains(ch[0].Reason, c.reason) {
			t.Errorf("first sight of %s with no trusted ref: %+v; want runnable=%v and %q", c.head, ch, c.runnable, c.reason)
		}
	}
}
