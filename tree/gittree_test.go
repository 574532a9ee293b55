package tree_test

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/go-git/go-git/v5"

	"github.com/expsync/expsync/tree"
)

// TestGitTreeReadsLikeTheWorkingFolder: a tree read by ID from go-git's
// object store gives the IDs, modes, contents and link targets that the
// working folder it was written from gives, and that git itself recorded.
func TestGitTreeReadsLikeTheWorkingFolder(t *testing.T) {
	requireGit(t)
	dir := t.TempDir()
	writeFixture(t, dir)
	gitCLI(t, dir, "init", "-q")
	gitCLI(t, dir, "add", "-A")
	rootTree := gitCLI(t, dir, "write-tree")
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := tree.GitTree(repo.Storer, rootTree)
	if err != nil {
		t.Fatal(err)
	}
	d, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	if root, _ := g.Stat(""); string(root.Hash) != rootTree {
		t.Errorf("root %s, git says %s", root.Hash, rootTree)
	}
	files := 0
	err = tree.Walk(d, "", func(p string, e tree.Entry) error {
		ge, err := g.Stat(p)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if ge.Hash != e.Hash || ge.Mode != e.Mode {
			t.Errorf("%s: %s %o, the folder has %s %o", p, ge.Hash, ge.Mode, e.Hash, e.Mode)
		}
		switch e.Mode {
		case tree.ModeFile, tree.ModeExecutable:
			files++
			want, _ := os.ReadFile(filepath.Join(dir, filepath.FromSlash(p)))
			if got, err := g.ReadFile(p, 0); err != nil || string(got) != string(want) {
				t.Errorf("%s: read %q (%v), want %q", p, got, err, want)
			}
		case tree.ModeSymlink:
			want, _ := os.Readlink(filepath.Join(dir, filepath.FromSlash(p)))
			if got, err := g.ReadLink(p); err != nil || got != want {
				t.Errorf("%s: link %q (%v), want %q", p, got, err, want)
			}
			if _, err := g.ReadFile(p, 0); !errors.Is(err, tree.ErrSymlink) {
				t.Errorf("%s: ReadFile of a symlink: %v", p, err)
			}
		}
		return nil
	})
	if err != nil || files == 0 {
		t.Fatalf("walk: %v (%d files)", err, files)
	}
	if _, err := tree.GitTree(repo.Storer, "0123456789012345678901234567890123456789"); err == nil {
		t.Error("a tree the store lacks opened")
	}
}
