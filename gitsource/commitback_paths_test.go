package gitsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestCommitBackRefusesPathsGitRefuses (issue 9, item 3): a commit holding
// a path Git refuses on some platform pushed fine and broke the checkout of
// every later clone ("invalid path"). CommitBack refuses such a file and
// pushes nothing; paths with odd characters Git accepts everywhere go
// through, and the git CLI clones, checks out and fscks the result.
func TestCommitBackRefusesPathsGitRefuses(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	base := p.commit("first", map[string]string{"README": "x"})
	p.push("main")
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	for _, bad := range []string{
		"results/x/.git/config", "results/x/.GIT", "results/x/git~1/a", "results/x/.git./a", "results/x/.git /a",
		"results/x/.g\u200cit/a", "results/x/.git::$INDEX_ALLOCATION/a", "results/x/aux.txt", "results/x/a:b",
		"results/x/end.", "results/x/" + strings.Repeat("n", 256),
	} {
		_, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Base: base, Message: "m", Author: bot,
			Files: map[string][]byte{"results/ok": []byte("ok"), bad: []byte("x")}}, nil)
		if err == nil || !strings.Contains(err.Error(), "nothing was committed") {
			t.Errorf("%q: err %v, want a refusal", bad, err)
		}
	}
	if h := reclone(t, srv.peerURL("exps"), "main").head(t); h != base {
		t.Fatalf("head moved to %s: a refused commit was pushed", h)
	}
	odd := map[string][]byte{
		"results/x/é ü/ß.txt": []byte("1"), "results/x/.gitignore": []byte("2"), "results/x/a.git": []byte("3"),
		"results/x/git~2": []byte("4"), "results/x/a b/c-d_e+f=g,h;i'j(k)": []byte("5"), "results/x/.gitx": []byte("6"),
		"results/x/a": []byte("7"), "results/x/a.b": []byte("8"), "results/x/a-": []byte("9"), "results/x/a0/z": []byte("10"),
	}
	res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Base: base, Message: "m", Author: bot, Files: odd}, nil)
	if err != nil || !res.Pushed {
		t.Fatalf("odd names Git accepts: %+v, %v", res, err)
	}
	c := reclone(t, srv.peerURL("exps"), "main")
	for p, data := range odd {
		got, err := os.ReadFile(filepath.Join(c.dir, filepath.FromSlash(p)))
		if err != nil || string(got) != string(data) {
			t.Errorf("%q: checked out %q (%v), want %q", p, got, err, data)
		}
	}
	if out, err := gitErr(c.dir, nil, "-c", "core.protectNTFS=true", "-c", "core.protectHFS=true", "fsck", "--strict", "--no-dangling"); err != nil || out != "" {
		t.Errorf("git fsck: %q %v", out, err)
	}
}
