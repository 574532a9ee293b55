package tree_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5"

	"github.com/expsync/expsync/tree"
)

// gitWithout is the peer of tree.TreeIDWithout: the real git removes the
// paths from a scratch index holding rootTree and writes the tree.
func gitWithout(t *testing.T, dir, rootTree, folder string, remove []string) string {
	t.Helper()
	index := filepath.Join(t.TempDir(), "index")
	run := func(args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1", "GIT_INDEX_FILE="+index)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}
	run("read-tree", rootTree)
	if len(remove) > 0 {
		args := []string{"rm", "--cached", "-r", "-q", "--ignore-unmatch", "--"}
		for _, p := range remove {
			args = append(args, tree.Join(folder, p))
		}
		run(args...)
	}
	written := run("write-tree")
	if folder == "" {
		return written
	}
	cmd := exec.Command("git", "rev-parse", "-q", "--verify", written+":"+folder)
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil {
		return string(tree.EmptyTree) // the folder vanished with its last file
	}
	return strings.TrimSpace(string(out))
}

// TestTreeIDWithoutMatchesGitRm checks the filtered tree ID over a working
// folder, an in-memory tree and go-git's object store against git itself.
func TestTreeIDWithoutMatchesGitRm(t *testing.T) {
	requireGit(t)
	dir := t.TempDir()
	writeFixture(t, dir)
	gitCLI(t, dir, "init", "-q")
	gitCLI(t, dir, "add", "-A")
	rootTree := gitCLI(t, dir, "write-tree")

	d, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	repo, err := git.PlainOpen(dir)
	if err != nil {
		t.Fatal(err)
	}
	objects, err := tree.GitObjects(repo.Storer, rootTree)
	if err != nil {
		t.Fatal(err)
	}
	readers := map[string]tree.DirReader{"dir": d, "memory": memoryFixture(t), "git objects": objects}

	cases := []struct {
		name   string
		folder string
		remove []string
	}{
		{"nothing removed", "code", nil},
		{"one file at the top", "", []string{"README.md"}},
		{"files in a sub-folder", "code", []string{"pi/estimate.py", "pi/lib/util.py"}},
		{"a whole folder", "code", []string{"pi/lib"}},
		{"last file empties its folder", "", []string{"a/x.txt"}},
		{"everything of the folder", "code/pi", []string{"estimate.py", "lib"}},
		{"a symlink", "code", []string{"other/link-to-dir"}},
		{"absent path and a path through a file", "", []string{"no/such", "README.md/x", "a.b"}},
		{"sort-order neighbours", "", []string{"a-b", "a0"}},
		{"unicode names", "", []string{"sp ace/ünï.txt"}},
		{"duplicates", "code", []string{"pi/estimate.py", "pi/estimate.py", "pi"}},
	}
	for _, c := range cases {
		want := gitWithout(t, dir, rootTree, c.folder, c.remove)
		for name, r := range readers {
			got, err := tree.TreeIDWithout(r, c.folder, c.remove)
			if err != nil {
				t.Errorf("%s over %s: %v", c.name, name, err)
				continue
			}
			if string(got) != want {
				t.Errorf("%s over %s: %s, git says %s", c.name, name, got, want)
			}
		}
	}
	if got, _ := tree.TreeIDWithout(d, "code", nil); string(got) != gitCLI(t, dir, "rev-parse", rootTree+":code") {
		t.Errorf("removing nothing gives %s, not the folder's own tree", got)
	}
}

func TestTreeIDWithoutRefusesBadPaths(t *testing.T) {
	m := tree.MemoryOf(map[string]string{"a/b": "x"})
	for _, p := range []string{"../a", "/a", "", ".", "a/../../b"} {
		if _, err := tree.TreeIDWithout(m, "a", []string{p}); err == nil {
			t.Errorf("remove %q: no error", p)
		}
	}
	if _, err := tree.TreeIDWithout(m, "missing", nil); err == nil {
		t.Error("a missing folder: no error")
	}
	if _, err := tree.GitObjects(nil, "HEAD"); err == nil {
		t.Error("GitObjects accepted a revision name")
	}
}

func TestPathsBelow(t *testing.T) {
	files := []string{"experiments/b.yaml", "experiments/a.yaml", "experimentsx/c.yaml", "expsync.yaml", "experiments/a.yaml", "templates/t.yaml"}
	for _, c := range []struct {
		dir  string
		want string
	}{
		{"experiments", "a.yaml b.yaml"},
		{"", "experiments/a.yaml experiments/b.yaml experimentsx/c.yaml expsync.yaml templates/t.yaml"},
		{"code", ""},
	} {
		if got := strings.Join(tree.PathsBelow(c.dir, files), " "); got != c.want {
			t.Errorf("PathsBelow(%q) = %q, want %q", c.dir, got, c.want)
		}
	}
}
