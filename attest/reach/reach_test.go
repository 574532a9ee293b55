package reach

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func gitCLI(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func write(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestIndexAnswersLikeGit builds history with the git CLI: objects of an
// old commit stay reachable, objects only on another branch are not, and
// commits are found whether reachable or not.
func TestIndexAnswersLikeGit(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	dir := t.TempDir()
	gitCLI(t, dir, "init", "-q", "-b", "main")
	write(t, dir, "code/a/x.py", "1\n")
	gitCLI(t, dir, "add", "-A")
	gitCLI(t, dir, "commit", "-q", "-m", "one")
	oldTree, oldBlob := gitCLI(t, dir, "rev-parse", "HEAD:code/a"), gitCLI(t, dir, "rev-parse", "HEAD:code/a/x.py")
	write(t, dir, "code/a/x.py", "2\n")
	gitCLI(t, dir, "commit", "-q", "-am", "two")
	gitCLI(t, dir, "checkout", "-q", "-b", "side")
	write(t, dir, "code/a/x.py", "3\n")
	gitCLI(t, dir, "commit", "-q", "-am", "three")
	sideTree, sideBlob, sideCommit := gitCLI(t, dir, "rev-parse", "HEAD:code/a"), gitCLI(t, dir, "rev-parse", "HEAD:code/a/x.py"), gitCLI(t, dir, "rev-parse", "HEAD")
	gitCLI(t, dir, "checkout", "-q", "main")

	x, err := Open(dir, "main")
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		fn   func(string) (bool, error)
		id   string
		want bool
	}{
		{"old tree", x.HasTree, oldTree, true},
		{"old blob", x.HasBlob, oldBlob, true},
		{"root tree", x.HasTree, gitCLI(t, dir, "rev-parse", "main^{tree}"), true},
		{"side tree", x.HasTree, sideTree, false},
		{"side blob", x.HasBlob, sideBlob, false},
		{"blob as tree", x.HasTree, oldBlob, false},
		{"side commit exists", x.HasCommit, sideCommit, true},
		{"unknown commit", x.HasCommit, strings.Repeat("1", 40), false},
		{"not a hash", x.HasTree, "main", false},
	}
	for _, c := range checks {
		got, err := c.fn(c.id)
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
		}
		if got != c.want {
			t.Errorf("%s (%s): got %v, want %v", c.name, c.id, got, c.want)
		}
	}
	if _, err := Open(dir, "no-such-branch"); err == nil {
		t.Error("Open with an unknown revision succeeded")
	}
}
