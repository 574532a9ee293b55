package tree

import (
	"errors"
	"os/exec"
	"strings"
	"testing"
)

const u200c = "\u200c"

// refusedEverywhere are paths Git refuses to check out on some platform it
// protects (the vectors of git's t0060-path-utils.sh, t1450-fsck.sh and
// t7415-submodule-names.sh, and the cases).
var refusedEverywhere = append(append([]string{}, dotGitSpellings...),
	// generic
	"", "/a", "a//b", ".", "..", "a/./b", "a/../b", "a/",
	// Windows
	"aux", "AUX.c", "abc/conOut$  .xyz/test", "lpt8", "com9.c", "lpt*", "Nul", "PRN./abc", "con", "conin$", "a:b", "x?", "q\"", "p|q", "a<b", "a>b",
	"trailing.", "trailing ", "a\\b", "ctl\x01", "tab\tname",
	strings.Repeat("n", 256),
)

// dotGitSpellings are names that Git reads as its own folder on some
// platform; git itself refuses every one (TestCheckGitPathAgreesWithGit).
var dotGitSpellings = []string{
	".git", ".GIT", ".Git", "a/.git", "a/.gIt/b", ".git/config",
	// NTFS
	"git~1", "GIT~1", "a/git~1/b", ".git.", ".git..", ".git ", ".git . .", "a/.git. /b", ".git::$INDEX_ALLOCATION", ".git:x", "git~1.", "git~1 :x",
	// HFS+
	".g" + u200c + "it", "." + u200c + "git", ".git" + u200c, "\ufeff.git", ".g\u200eit", ".G\u206fIT", ".git\xff", ".GIT\u200c\xef\xbf\xbe",
}

var acceptedEverywhere = []string{
	"a", "a/b.txt", ".gitignore", ".gitx", "x.git", "git", "git~2", ".git~1", "gitx~1", "..gitmodules",
	"com0.c", "lptN", "comm", "conout.c", "console", "nulled", "auxiliary", "win32 x",
	".g" + u200c + "itx", "é/ü", ".g\xffit", strings.Repeat("n", 255),
	// Names Git protects only as symlinks (see TestCheckGitPathSymlinks).
	".gitmodules", ".gitattributes", ".mailmap",
}

func TestCheckGitPath(t *testing.T) {
	for _, p := range refusedEverywhere {
		err := CheckGitPath(p, ModeFile)
		var pe *PathError
		if !errors.As(err, &pe) {
			t.Errorf("CheckGitPath(%q) = %v, want a *PathError", p, err)
			continue
		}
	}
	// A reason never repeats the name: a name may hold a secret's value,
	// and callers print the reason alone then.
	for _, p := range []string{"QQsecretQQ?", "a/QQsecretQQ.", "QQsecretQQ/" + strings.Repeat("x", 300), "aux.QQsecretQQ", "QQ\x01QQ"} {
		var pe *PathError
		if !errors.As(CheckGitPath(p, ModeFile), &pe) || strings.Contains(pe.Reason, "QQ") {
			t.Errorf("CheckGitPath(%q): %v, want a reason that does not quote the name", p, pe)
		}
	}
	for _, p := range acceptedEverywhere {
		if err := CheckGitPath(p, ModeFile); err != nil {
			t.Errorf("CheckGitPath(%q) = %v, want nil", p, err)
		}
	}
	long := strings.Repeat(strings.Repeat("d", 200)+"/", 21) + "f"
	if err := CheckGitPath(long, ModeFile); err == nil {
		t.Errorf("a path of %d bytes passed", len(long))
	}
}

// TestCheckGitPathSymlinks: fsck refuses Git's dot files as symlinks in
// every spelling (t0060's is_dotgitmodules vectors), not as files.
func TestCheckGitPathSymlinks(t *testing.T) {
	match := []string{
		".gitmodules", ".git" + u200c + "modules", ".Gitmodules", ".gitmoduleS",
		".gitmodules ", ".gitmodules.", ".gitmodules  ", ".gitmodules. ", ".gitmodules ..",
		"GITMOD~1", "gitmod~1", "GITMOD~2", "gitmod~3", "GITMOD~4", "GITMOD~1 ", "gitmod~2.", "gitmod~4 . ",
		"GI7EBA~1", "gi7eba~9", "GI7EB~10", "GI7EB~99", "GI7E~100", "GI7E~999", "~1000000", "~9999999",
		"gitmod~4 . :$DATA",
		".gitattributes", ".git" + u200c + "attributes", "GITATT~1", "GI7D29~1",
		".gitignore", "GITIGN~1", "GI250A~1", ".mailmap", ".mail" + u200c + "map", "MAILMA~1", "MABA30~1",
	}
	notMatch := []string{
		".gitmodules x", ".gitmodules .x", " .gitmodules", "..gitmodules", "gitmodules", ".gitmodule",
		"GI7EBA~", "GI7EBA~0", "GI7EBA~~1", "GI7EBA~X", "Gx7EBA~1", "GI7EBX~1", "GI7EB~1", "GI7EB~01", "GI7EB~1X",
	}
	for _, name := range match {
		// Some spellings are refused for their trailing period or ':'
		// already; each must be refused as a symlink.
		if err := CheckGitPath("d/"+name, ModeSymlink); err == nil {
			t.Errorf("symlink %q passed", name)
		}
	}
	for _, name := range notMatch {
		if windowsNameProblem(name) != "" || name[0] == ' ' {
			continue // refused for another reason
		}
		if err := CheckGitPath("d/"+name, ModeSymlink); err != nil {
			t.Errorf("symlink %q: %v, want nil", name, err)
		}
	}
}

func TestCheckResultPath(t *testing.T) {
	for _, p := range []string{"out/.gitattributes", ".gitmodules", "x/GITATT~1", "x/.Gitattributes", "x/.git" + u200c + "modules"} {
		if err := CheckResultPath(p); err == nil {
			t.Errorf("CheckResultPath(%q) = nil, want an error", p)
		}
	}
	for _, p := range []string{"out/.gitignore", "out/a.txt", ".mailmap"} {
		if err := CheckResultPath(p); err != nil {
			t.Errorf("CheckResultPath(%q) = %v", p, err)
		}
	}
}

// TestCheckGitPathAgreesWithGit asks the git CLI (core.protectNTFS and
// core.protectHFS on, as Git for Windows and macOS have them) to index each
// path: every path CheckGitPath accepts, git accepts; every .git spelling
// git refuses, CheckGitPath refuses. (CheckGitPath refuses more: Windows
// device names and characters, which git checks only on Windows.)
func TestCheckGitPathAgreesWithGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git is not installed: the peer this test compares with")
	}
	repo := t.TempDir()
	gitRun(t, repo, "init", "-q")
	for _, p := range append(append([]string{}, refusedEverywhere...), acceptedEverywhere...) {
		if p == "" || strings.ContainsAny(p, "\x00\n") {
			continue
		}
		gitOK := gitAccepts(repo, p)
		ours := CheckGitPath(p, ModeFile) == nil
		if ours && !gitOK {
			t.Errorf("%q: CheckGitPath accepts, git refuses", p)
		}
	}
	for _, p := range dotGitSpellings {
		if gitAccepts(repo, p) {
			t.Errorf("%q: git accepts it: not a spelling git protects", p)
		}
	}
}

// gitAccepts reports whether git puts p into an index (verify_path).
func gitAccepts(repo, p string) bool {
	cmd := exec.Command("git", "-c", "core.protectNTFS=true", "-c", "core.protectHFS=true",
		"update-index", "--add", "--cacheinfo", "100644,e69de29bb2d1d6434b8b29ae775ad8c2e48c5391,"+p)
	cmd.Dir = repo
	cmd.Env = []string{"GIT_CONFIG_NOSYSTEM=1", "HOME=" + repo, "PATH=/usr/bin:/bin:/usr/local/bin"}
	err := cmd.Run()
	if err == nil {
		rm := exec.Command("git", "update-index", "--force-remove", "--", p)
		rm.Dir, rm.Env = repo, cmd.Env
		_ = rm.Run()
	}
	return err == nil
}

func gitRun(t testing.TB, dir string, args ...string) {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
}

// FuzzCheckGitPath: CheckGitPath never panics; a path it accepts is clean
// (tree.Clean leaves it as it is), holds no .git in any spelling a
// platform reads as .git, and git's own check (when git is installed)
// accepts it; its reasons never repeat the path.
func FuzzCheckGitPath(f *testing.F) {
	for _, p := range append(append([]string{}, refusedEverywhere...), acceptedEverywhere...) {
		f.Add(p)
		f.Add(p + "QQ")
	}
	repo := f.TempDir()
	_, gitErr := exec.LookPath("git")
	if gitErr == nil {
		gitRun(f, repo, "init", "-q")
	}
	f.Fuzz(func(t *testing.T, p string) {
		err := CheckGitPath(p, ModeFile)
		var pe *PathError
		if err != nil {
			if !errors.As(err, &pe) {
				t.Fatalf("%q: %v is not a *PathError", p, err)
			}
			// Reasons are made of fixed words, numbers and one quoted
			// byte: "QQ" in one can only come from the name.
			if strings.Contains(pe.Reason, "QQ") {
				t.Fatalf("%q: reason %q repeats the name", p, pe.Reason)
			}
			return
		}
		if c, cerr := Clean(p); cerr != nil || c != p {
			t.Fatalf("%q accepted but Clean gives %q, %v", p, c, cerr)
		}
		for _, comp := range strings.Split(p, "/") {
			folded := strings.ToLower(strings.Map(func(r rune) rune {
				if hfsIgnored(r) {
					return -1
				}
				return r
			}, comp))
			if strings.TrimRight(strings.SplitN(folded, ":", 2)[0], " .") == ".git" {
				t.Fatalf("%q accepted but %q reads as .git", p, comp)
			}
		}
		// git is asked only about names near its own (an exec per input
		// would make CI's 2000 inputs take minutes).
		near := strings.Contains(strings.ToLower(p), "git") || strings.Contains(p, "~")
		if gitErr == nil && near && !strings.ContainsAny(p, "\n") && !gitAccepts(repo, p) {
			t.Fatalf("%q accepted, git refuses it", p)
		}
	})
}
