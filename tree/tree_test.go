package tree_test

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/tree"
)

// fixture is a folder with the cases that make Git's IDs subtle: Git's
// folder sort order ("a" folder vs "a.b", "a-b" files), an executable, a
// group-only executable (not executable for Git), an empty file, a symlink
// pointing outside, nested folders, and an empty folder Git does not record.
type fixtureFile struct {
	content string
	mode    tree.Mode
}

func fixture() map[string]fixtureFile {
	return map[string]fixtureFile{
		"README.md":              {"hello\n", tree.ModeFile},
		"a/x.txt":                {"x\n", tree.ModeFile},
		"a.b":                    {"dot\n", tree.ModeFile},
		"a-b":                    {"dash\n", tree.ModeFile},
		"a0":                     {"zero\n", tree.ModeFile},
		"run.sh":                 {"#!/bin/sh\necho hi\n", tree.ModeExecutable},
		"empty":                  {"", tree.ModeFile},
		"link":                   {"../../etc/passwd", tree.ModeSymlink},
		"code/pi/estimate.py":    {"print(3.14)\n", tree.ModeFile},
		"code/pi/lib/util.py":    {"def f(): pass\n", tree.ModeFile},
		"code/pi/lib/data.bin":   {"\x00\x01\x02binary", tree.ModeFile},
		"code/other/link-to-dir": {"../pi", tree.ModeSymlink},
		"sp ace/ünï.txt":         {"utf8\n", tree.ModeFile},
	}
}

func writeFixture(t *testing.T, dir string) {
	t.Helper()
	for p, f := range fixture() {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		switch f.mode {
		case tree.ModeSymlink:
			if err := os.Symlink(f.content, full); err != nil {
				t.Fatal(err)
			}
		case tree.ModeExecutable:
			if err := os.WriteFile(full, []byte(f.content), 0o755); err != nil {
				t.Fatal(err)
			}
		default:
			if err := os.WriteFile(full, []byte(f.content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Git records neither empty folders nor group-only execute bits.
	if err := os.MkdirAll(filepath.Join(dir, "emptydir", "deeper"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "code", "group-x"), []byte("g\n"), 0o654); err != nil {
		t.Fatal(err)
	}
}

func memoryFixture(t *testing.T) *tree.Memory {
	t.Helper()
	m := tree.NewMemory()
	for p, f := range fixture() {
		if err := m.Write(p, []byte(f.content), f.mode); err != nil {
			t.Fatal(err)
		}
	}
	if err := m.Write("code/group-x", []byte("g\n"), tree.ModeFile); err != nil {
		t.Fatal(err)
	}
	return m
}

func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func requireGit(t *testing.T) {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the git CLI is the peer these IDs are checked against and is not installed")
	}
}

// TestDirAndMemoryMatchGitCLI checks every ID against the real git: the root
// against `git write-tree`, every folder against `git rev-parse TREE:path`,
// every file against `git ls-tree` (mode and blob) and `git hash-object`.
func TestDirAndMemoryMatchGitCLI(t *testing.T) {
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
	for name, r := range map[string]tree.Reader{"Dir": d, "Memory": memoryFixture(t)} {
		t.Run(name, func(t *testing.T) {
			got, err := tree.TreeHash(r, "")
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != rootTree {
				t.Errorf("root tree = %s, git write-tree = %s", got, rootTree)
			}
			for _, sub := range []string{"a", "code", "code/pi", "code/pi/lib", "sp ace"} {
				want := gitCLI(t, dir, "rev-parse", rootTree+":"+sub)
				got, err := tree.TreeHash(r, sub)
				if err != nil {
					t.Fatal(err)
				}
				if string(got) != want {
					t.Errorf("tree %s = %s, git rev-parse = %s", sub, got, want)
				}
			}
			// Every entry, recursively, as git ls-tree lists it.
			var lines []string
			err = tree.Walk(r, "", func(p string, e tree.Entry) error {
				if !e.IsDir() {
					lines = append(lines, fmt.Sprintf("%06o", e.Mode)+" blob "+string(e.Hash)+"\t"+p)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(lines) != len(fixture())+1 {
				t.Errorf("walked %d files, want %d", len(lines), len(fixture())+1)
			}
			want := strings.Split(gitCLI(t, dir, "-c", "core.quotePath=false", "ls-tree", "-r", rootTree), "\n")
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("entries differ from git ls-tree -r (-git +ours):\n%s", diff)
			}
		})
	}
	// hash-object of a regular file, independently of ls-tree.
	e, err := d.Stat("code/pi/lib/data.bin")
	if err != nil {
		t.Fatal(err)
	}
	if want := gitCLI(t, dir, "hash-object", "code/pi/lib/data.bin"); string(e.Hash) != want {
		t.Errorf("blob = %s, git hash-object = %s", e.Hash, want)
	}
}

// TestDirSkipsGitFolderAndIgnoredFiles shows `.git` is skipped and a
// .gitignore honoured (more in dir_ignore_test.go).
func TestDirSkipsGitFolderAndIgnoredFiles(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, ".gitignore"), []byte("*.log\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "x.log"), []byte("ignored\n"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "x.txt"), []byte("kept\n"), 0o644))
	must(t, os.MkdirAll(filepath.Join(dir, ".git", "objects"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, ".git", "HEAD"), []byte("ref: refs/heads/main\n"), 0o644))
	d, err := tree.NewDir(dir)
	must(t, err)
	defer d.Close()
	entries, err := d.ReadDir("")
	must(t, err)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name)
	}
	if diff := cmp.Diff([]string{".gitignore", "x.txt"}, names); diff != "" {
		t.Errorf("root entries (-want +got):\n%s", diff)
	}
	if _, err := d.Stat(".git/HEAD"); !errors.Is(err, tree.ErrNotExist) {
		t.Errorf("Stat(.git/HEAD) = %v, want ErrNotExist", err)
	}
}

func TestReaderRefusesEscapesSymlinksAndOversizedFiles(t *testing.T) {
	dir := t.TempDir()
	writeFixture(t, dir)
	d, err := tree.NewDir(dir)
	must(t, err)
	defer d.Close()
	for name, r := range map[string]tree.Reader{"Dir": d, "Memory": memoryFixture(t)} {
		t.Run(name, func(t *testing.T) {
			cases := []struct {
				path  string
				limit int64
				want  error
			}{
				{"../etc/passwd", 0, tree.ErrEscapes},
				{"a/../../x", 0, tree.ErrEscapes},
				{"/etc/passwd", 0, tree.ErrEscapes},
				{"a/x.txt\x00", 0, tree.ErrEscapes},
				{`a\x.txt`, 0, tree.ErrEscapes},
				{"link", 0, tree.ErrSymlink},
				{"code/other/link-to-dir/estimate.py", 0, tree.ErrSymlink},
				{"missing.txt", 0, tree.ErrNotExist},
				{"emptydir", 0, tree.ErrNotExist},
				{"README.md/x", 0, tree.ErrNotExist},
				{"code/pi/estimate.py", 4, tree.ErrTooLarge},
			}
			for _, c := range cases {
				_, err := r.ReadFile(c.path, c.limit)
				if !errors.Is(err, c.want) {
					t.Errorf("ReadFile(%q, %d) = %v, want %v", c.path, c.limit, err, c.want)
				}
			}
			got, err := r.ReadFile("./code//pi/estimate.py", 12)
			if err != nil || string(got) != "print(3.14)\n" {
				t.Errorf("ReadFile(estimate.py) = %q, %v", got, err)
			}
			if _, err := r.ReadDir("link"); !errors.Is(err, tree.ErrSymlink) {
				t.Errorf("ReadDir(link) = %v, want ErrSymlink", err)
			}
		})
	}
}

func TestMemoryWriteAndRemoveUpdateIDs(t *testing.T) {
	m := memoryFixture(t)
	before, err := tree.TreeHash(m, "")
	must(t, err)
	pi, err := tree.TreeHash(m, "code/pi")
	must(t, err)
	must(t, m.Write("a/new.txt", []byte("new"), tree.ModeFile))
	after, _ := tree.TreeHash(m, "")
	if after == before {
		t.Error("root ID unchanged after a write")
	}
	if got, _ := tree.TreeHash(m, "code/pi"); got != pi {
		t.Error("a write outside code/pi changed its ID")
	}
	must(t, m.Remove("a/new.txt"))
	if got, _ := tree.TreeHash(m, ""); got != before {
		t.Errorf("root ID after write+remove = %s, want %s", got, before)
	}
	must(t, m.Remove("a/x.txt"))
	if _, err := m.Stat("a"); !errors.Is(err, tree.ErrNotExist) {
		t.Errorf("folder left empty still exists: %v", err)
	}
	if got, _ := tree.TreeHash(tree.NewMemory(), ""); got != tree.EmptyTree {
		t.Errorf("empty tree = %s, want %s", got, tree.EmptyTree)
	}
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestDirSkipsSpecialFiles: a named pipe is not recorded (Git records none)
// and listing a folder holding one never blocks on it.
func TestDirSkipsSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "a.txt"), []byte("a\n"), 0o644))
	if err := syscallMkfifo(filepath.Join(dir, "pipe")); err != nil {
		t.Skipf("cannot make a named pipe here: %v", err)
	}
	d, err := tree.NewDir(dir)
	must(t, err)
	defer d.Close()
	entries, err := d.ReadDir("")
	must(t, err)
	if len(entries) != 1 || entries[0].Name != "a.txt" {
		t.Errorf("entries = %+v, want only a.txt", entries)
	}
	if _, err := d.ReadFile("pipe", 0); !errors.Is(err, tree.ErrNotExist) {
		t.Errorf("ReadFile(pipe) = %v, want ErrNotExist", err)
	}
}
