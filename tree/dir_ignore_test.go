package tree_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/tree"
)

// The ignore tests run git with the user's configuration replaced by a
// temporary HOME, so the global excludes file is the test's own and both
// sides (git and Dir) read the same one.
func isolateGitConfig(t *testing.T) (home string) {
	t.Helper()
	requireGit(t)
	home = t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("XDG_CONFIG_HOME", filepath.Join(home, ".config"))
	t.Setenv("GIT_CONFIG_NOSYSTEM", "1")
	t.Setenv("GIT_CONFIG_GLOBAL", "")
	os.Unsetenv("GIT_CONFIG_GLOBAL") // restored by t.Setenv's cleanup
	for _, k := range []string{"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE"} {
		t.Setenv(k, "")
		os.Unsetenv(k)
	}
	return home
}

// gitRun runs the git CLI with the test's environment (see isolateGitConfig).
func gitRun(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=T", "GIT_AUTHOR_EMAIL=t@example.org",
		"GIT_COMMITTER_NAME=T", "GIT_COMMITTER_EMAIL=t@example.org")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

func writeFiles(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for p, content := range files {
		full := filepath.Join(root, filepath.FromSlash(p))
		must(t, os.MkdirAll(filepath.Dir(full), 0o755))
		if target, ok := strings.CutPrefix(content, "symlink:"); ok {
			must(t, os.Symlink(target, full))
			continue
		}
		must(t, os.WriteFile(full, []byte(content), 0o644))
	}
}

// ignoreFixture has every kind of ignore rule: nested .gitignore files,
// negation, anchored and unanchored folder patterns, a pattern with a
// slash, comments and CRLF endings, a symlink a folder pattern must not
// match, and a folder holding only ignored files (it vanishes).
func ignoreFixture() map[string]string {
	return map[string]string{
		".gitignore":                 "# Python\r\n__pycache__/\r\n*.pyc\r\n!keep.pyc\r\n/build/\r\nlogs/*.log\r\n\r\n",
		"README.md":                  "readme\n",
		"notes.txt":                  "notes\n",
		"notes.bak":                  "global excludes\n",
		"secret.txt":                 "info/exclude\n",
		"build/x.o":                  "anchored folder\n",
		"sub/build/y.o":              "not the anchored folder\n",
		"logs/a.log":                 "ignored\n",
		"logs/keep.txt":              "kept\n",
		"logs/deeper/b.log":          "the pattern has a slash: one level only\n",
		"cache/only.pyc":             "ignored, so cache/ vanishes\n",
		"experiments/pi/estimate.py": "print(3.14)\n",
		"experiments/pi/__pycache__/estimate.cpython-312.pyc": "junk\n",
		"experiments/pi/keep.pyc":                             "negated\n",
		"experiments/pi/other.pyc":                            "ignored\n",
		"experiments/pi/.gitignore":                           "*.log\n!important.log\nout/\nlink/\n",
		"experiments/pi/run.log":                              "ignored by the nested file\n",
		"experiments/pi/important.log":                        "negated in the nested file\n",
		"experiments/pi/out/result.csv":                       "ignored folder\n",
		"experiments/pi/link":                                 "symlink:out",
		"experiments/pi/secret.txt":                           "info/exclude, any level\n",
		"experiments/other/out/kept.csv":                      "out/ is pi's rule only\n",
		"data/ok.txt":                                         "ok\n",
		"data/tracked.pyc":                                    "ignored but tracked: git add -f\n",
		"data/__pycache__/tracked.pyc":                        "tracked inside an ignored folder\n",
		"data/__pycache__/untracked.pyc":                      "ignored inside an ignored folder\n",
	}
}

// ignoreRepo commits ignoreFixture with `git add -A` after forcing the
// tracked-but-ignored files in, with info/exclude and a global excludes
// file named by ~/.gitconfig's core.excludesFile.
func ignoreRepo(t *testing.T) string {
	t.Helper()
	home := isolateGitConfig(t)
	writeFiles(t, home, map[string]string{
		".gitconfig":     "[core]\n\texcludesFile = ~/global-ignore\n",
		"global-ignore":  "*.bak\n",
		".config/git/ig": "unused\n",
	})
	repo := t.TempDir()
	writeFiles(t, repo, ignoreFixture())
	gitRun(t, repo, "init", "-q")
	writeFiles(t, repo, map[string]string{".git/info/exclude": "# local\nsecret.txt\n"})
	gitRun(t, repo, "add", "-f", "data/tracked.pyc", "data/__pycache__/tracked.pyc")
	gitRun(t, repo, "add", "-A")
	gitRun(t, repo, "commit", "-qm", "fixture")
	return repo
}

// TestDirHonoursGitIgnoreLikeGitAdd: for a work tree full of ignored
// files, every folder's tree ID from Dir equals `git rev-parse HEAD:path`
// after `git add -A && git commit`, and the files Dir lists are exactly the
// commit's — with Dir opened at the top and at sub-folders.
func TestDirHonoursGitIgnoreLikeGitAdd(t *testing.T) {
	repo := ignoreRepo(t)
	folders := []string{"", "experiments", "experiments/pi", "experiments/other", "data", "data/__pycache__", "logs", "sub"}
	for _, open := range []string{"", "experiments", "experiments/pi", "data"} {
		t.Run("open="+open, func(t *testing.T) {
			d, err := tree.NewDir(filepath.Join(repo, filepath.FromSlash(open)))
			must(t, err)
			defer d.Close()
			var got []string
			must(t, tree.Walk(d, "", func(p string, e tree.Entry) error {
				if !e.IsDir() {
					got = append(got, p)
				}
				return nil
			}))
			want := strings.Split(gitRun(t, repo, "-c", "core.quotePath=false", "ls-tree", "-r", "--name-only", "HEAD:"+open), "\n")
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("files differ from the commit's (-git +Dir):\n%s", diff)
			}
			for _, f := range folders {
				rel, ok := strings.CutPrefix(f, open)
				if !ok || (open != "" && rel != "" && rel[0] != '/') {
					continue
				}
				rel = strings.TrimPrefix(rel, "/")
				got, err := tree.TreeHash(d, rel)
				must(t, err)
				if want := gitRun(t, repo, "rev-parse", "HEAD:"+f); string(got) != want {
					t.Errorf("tree %q = %s, git rev-parse HEAD:%s = %s", rel, got, f, want)
				}
			}
			if _, err := d.Stat("cache"); err == nil {
				t.Errorf("cache/ holds only ignored files, yet Dir records it")
			}
		})
	}
}

// TestDirOutsideWorkTreeAppliesGitIgnore: a folder that is not yet a
// repository hashes as it will once committed: its .gitignore files and
// the user's global excludes apply.
func TestDirOutsideWorkTreeAppliesGitIgnore(t *testing.T) {
	home := isolateGitConfig(t)
	writeFiles(t, home, map[string]string{".config/git/ignore": "*.bak\n"}) // the default global file
	dir := t.TempDir()
	files := ignoreFixture()
	for _, p := range []string{"secret.txt", "experiments/pi/secret.txt", "data/tracked.pyc", "data/__pycache__/tracked.pyc"} {
		delete(files, p) // info/exclude and forced adds need a repository
	}
	writeFiles(t, dir, files)
	d, err := tree.NewDir(dir)
	must(t, err)
	before, err := tree.TreeHash(d, "")
	must(t, err)
	d.Close()
	if _, ok := d.Untracked(""); ok {
		t.Errorf("Untracked reports ok outside a work tree, where there is no index")
	}
	gitRun(t, dir, "init", "-q")
	gitRun(t, dir, "add", "-A")
	gitRun(t, dir, "commit", "-qm", "now a repository")
	if want := gitRun(t, dir, "rev-parse", "HEAD^{tree}"); string(before) != want {
		t.Errorf("Dir before git init = %s, the commit's tree = %s", before, want)
	}
}

// TestDirUntrackedFiles: files neither ignored nor in the index are listed
// (they make the IDs differ from the last commit's); ignored, tracked and
// staged files are not.
func TestDirUntrackedFiles(t *testing.T) {
	repo := ignoreRepo(t)
	writeFiles(t, repo, map[string]string{
		"experiments/pi/new.py":               "untracked\n",
		"experiments/pi/staged.py":            "added, not committed\n",
		"experiments/pi/__pycache__/more.pyc": "ignored\n",
		"experiments/other/new.txt":           "untracked elsewhere\n",
	})
	gitRun(t, repo, "add", "experiments/pi/staged.py")
	d, err := tree.NewDir(filepath.Join(repo, "experiments"))
	must(t, err)
	defer d.Close()
	if _, err := tree.TreeHash(d, ""); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		folder string
		want   []string
	}{
		{"pi", []string{"pi/new.py"}},
		{"other", []string{"other/new.txt"}},
		{"", []string{"other/new.txt", "pi/new.py"}},
	} {
		got, ok := d.Untracked(tc.folder)
		if !ok {
			t.Fatalf("Untracked(%q) not ok inside a work tree", tc.folder)
		}
		if diff := cmp.Diff(tc.want, got); diff != "" {
			t.Errorf("Untracked(%q) (-want +got):\n%s", tc.folder, diff)
		}
	}
}

// TestDirFolderIgnoredByItsWorkTree: a folder the enclosing repository
// ignores (a scratch copy of an experiment repository) is read as a
// repository of its own, not as empty.
func TestDirFolderIgnoredByItsWorkTree(t *testing.T) {
	isolateGitConfig(t)
	outer := t.TempDir()
	writeFiles(t, outer, map[string]string{
		".gitignore":              "scratch/\n*.log\n",
		"scratch/expsync.yaml":    "x: 1\n",
		"scratch/run.log":         "the outer *.log still applies? no: not part of the outer repository\n",
		"scratch/.gitignore":      "*.tmp\n",
		"scratch/junk.tmp":        "ignored by its own .gitignore\n",
		"scratch/exp/estimate.py": "print(1)\n",
	})
	gitRun(t, outer, "init", "-q")
	scratch := filepath.Join(outer, "scratch")
	d, err := tree.NewDir(scratch)
	must(t, err)
	got, err := tree.TreeHash(d, "")
	must(t, err)
	d.Close()
	gitRun(t, scratch, "init", "-q")
	gitRun(t, scratch, "add", "-A")
	if want := gitRun(t, scratch, "write-tree"); string(got) != want {
		t.Errorf("Dir = %s, git write-tree of it as its own repository = %s", got, want)
	}
}

// TestDirDoesNotFollowSymlinkedGitIgnore: Git (since 2.32) does not read a
// .gitignore that is a symlink; neither does Dir, so a link cannot pull in
// rules from outside the repository.
func TestDirDoesNotFollowSymlinkedGitIgnore(t *testing.T) {
	isolateGitConfig(t)
	outside := filepath.Join(t.TempDir(), "rules")
	must(t, os.WriteFile(outside, []byte("*.txt\n"), 0o644))
	dir := t.TempDir()
	writeFiles(t, dir, map[string]string{"a.txt": "a\n", "sub/b.txt": "b\n", "sub/.gitignore": "symlink:" + outside})
	d, err := tree.NewDir(dir)
	must(t, err)
	defer d.Close()
	for _, p := range []string{"a.txt", "sub/b.txt", "sub/.gitignore"} {
		if _, err := d.Stat(p); err != nil {
			t.Errorf("Stat(%s) = %v; a symlinked .gitignore must not apply", p, err)
		}
	}
}

// TestDirThroughSymlinkFindsTheWorkTree: opened through a symlink, Dir finds
// the work tree the physical folder is in, as git does.
func TestDirThroughSymlinkFindsTheWorkTree(t *testing.T) {
	repo := ignoreRepo(t)
	link := filepath.Join(t.TempDir(), "link")
	must(t, os.Symlink(filepath.Join(repo, "experiments"), link))
	d, err := tree.NewDir(link)
	must(t, err)
	defer d.Close()
	got, err := tree.TreeHash(d, "")
	must(t, err)
	if want := gitRun(t, repo, "rev-parse", "HEAD:experiments"); string(got) != want {
		t.Errorf("Dir through a symlink = %s, git rev-parse HEAD:experiments = %s", got, want)
	}
}

// TestDirHonoursGitIndexFile: in a hook Git names the index being committed
// with GIT_INDEX_FILE; a file ignored and absent from that index is left
// out although the default index tracks it.
func TestDirHonoursGitIndexFile(t *testing.T) {
	repo := ignoreRepo(t)
	alt := filepath.Join(t.TempDir(), "index")
	t.Setenv("GIT_INDEX_FILE", alt)
	gitRun(t, repo, "read-tree", "HEAD")
	gitRun(t, repo, "rm", "-q", "--cached", "data/tracked.pyc")
	want := gitRun(t, repo, "rev-parse", gitRun(t, repo, "write-tree")+":data")
	d, err := tree.NewDir(filepath.Join(repo, "data"))
	must(t, err)
	defer d.Close()
	got, err := tree.TreeHash(d, "")
	must(t, err)
	if string(got) != want {
		t.Errorf("Dir with GIT_INDEX_FILE = %s, git write-tree of that index = %s", got, want)
	}
	if _, err := d.Stat("tracked.pyc"); err == nil {
		t.Errorf("data/tracked.pyc is ignored and not in GIT_INDEX_FILE's index, yet Dir records it")
	}
}

// TestDirIgnoreCornersMatchGit puts single .gitignore files whose meaning
// is subtle beside the git CLI: for each, the tree Dir hashes before `git
// init` equals `git add -A && git write-tree` after it, file for file.
func TestDirIgnoreCornersMatchGit(t *testing.T) {
	isolateGitConfig(t)
	files := []string{"logs/keep.txt", "logs/a.txt", "logs/sub/b.txt", "a[x].txt", "ab.txt", "b.txt", "c.txt",
		"foo bar", "foo bar ", "#hash", "!bang", "x/y/z/deep.txt", "x/deep.txt", "doc/frotz/a", "a/doc/frotz/b",
		"foo/bar/baz.o", "build.o", "UP.TXT", "dir/sub/file", "src/main.py", "src/lib/util.py", "src/lib/data.csv"}
	for _, ignore := range []string{
		"logs/**\n!logs/keep.txt\n",        // "/**" matches inside the folder, not the folder
		"logs/*\n!logs/keep.txt\n",         // re-including in a folder that is not excluded
		"logs/\n!logs/keep.txt\n",          // no re-including in an excluded folder
		"[!a]*.txt\n",                      // negated class
		"a\\[x\\].txt\n",                   // escaped brackets
		"foo bar\\ \n",                     // escaped trailing space
		"foo bar   \n",                     // unescaped trailing spaces
		"\\#hash\n\\!bang\n",               // escaped comment and negation
		"x/**/deep.txt\n",                  // ** in the middle
		"**/deep.txt\n",                    // leading **
		"doc/frotz/\n",                     // a slash anchors to the folder of the .gitignore
		"frotz/\n",                         // no slash: any level
		"**/foo/**/*.o\n",                  // both
		"*.o\n!build.o\n",                  // negation
		"*\n!*/\n!*.txt\n",                 // allow-list: every folder, only .txt files
		"/*\n!/src/\n/src/*\n!/src/lib/\n", // allow-list of folders
		"dir/\n!dir/sub/\n",                // no re-including below an excluded folder
		"sub\n",                            // a name matches at any level, file or folder
		"x/y\n",                            // a path matches from the .gitignore's folder only
		"*.txt\n!logs/**\n",                // re-including a whole folder's files
		"src/**/*.py\n",
	} {
		t.Run(strings.ReplaceAll(ignore, "\n", `\n`), func(t *testing.T) {
			dir := t.TempDir()
			contents := map[string]string{".gitignore": ignore}
			for _, f := range files {
				contents[f] = f + "\n"
			}
			writeFiles(t, dir, contents)
			d, err := tree.NewDir(dir)
			must(t, err)
			got, err := tree.TreeHash(d, "")
			must(t, err)
			var ours []string
			must(t, tree.Walk(d, "", func(p string, e tree.Entry) error {
				if !e.IsDir() {
					ours = append(ours, p)
				}
				return nil
			}))
			d.Close()
			gitRun(t, dir, "init", "-q")
			gitRun(t, dir, "add", "-A")
			want := gitRun(t, dir, "write-tree")
			if diff := cmp.Diff(strings.Split(gitRun(t, dir, "-c", "core.quotePath=false", "ls-files"), "\n"), ours); diff != "" {
				t.Errorf("files (-git +Dir):\n%s", diff)
			}
			if string(got) != want {
				t.Errorf("Dir = %s, git write-tree = %s", got, want)
			}
		})
	}
}
