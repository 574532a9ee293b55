package gitsource

import (
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/expsync/expsync/tree"
)

// TestHistoryHoldsTreesNoHeadHas: History gives the objects of every
// branch's whole history, so a tree an old commit named (deleted since on
// main, kept only on another branch's history) is read by its ID; a second
// call fetches what is new.
func TestHistoryHoldsTreesNoHeadHas(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("lab")
	p := newPeer(t, srv.peerURL("lab"))
	first := p.commit("code", map[string]string{"code/x.py": "print(1)\n"})
	codeTree := runGit(t, p.dir, "rev-parse", first+":code")
	runGit(t, p.dir, "rm", "-q", "-r", "code")
	p.commit("drop code", nil)
	p.push("HEAD:main")
	runGit(t, p.dir, "checkout", "-q", "-b", "exp", first)
	p.commit("exp", map[string]string{"e.txt": "e"})
	p.push("exp")

	src := newSource(t, srv, "lab")
	objects, release, err := src.History(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	g, err := tree.GitTree(objects, codeTree)
	if err != nil {
		t.Fatalf("the old context tree is not in the history: %v", err)
	}
	if got, err := g.ReadFile("x.py", 0); err != nil || string(got) != "print(1)\n" {
		t.Errorf("x.py: %q %v", got, err)
	}
	release()

	runGit(t, p.dir, "checkout", "-q", "main")
	newer := p.commit("more", map[string]string{"y.txt": "y"})
	p.push("HEAD:main")
	objects, release, err = src.History(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	defer release()
	if _, err := object.GetCommit(objects, plumbing.NewHash(newer)); err != nil {
		t.Errorf("the second call did not fetch the new commit: %v", err)
	}
	if got := src.Stats().Fetches; got != 2 {
		t.Errorf("%d fetches, want 2", got)
	}
}
