package tree_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	gogit "github.com/go-git/go-git/v5"

	"github.com/expsync/expsync/tree"
)

// BenchmarkTreeIDWithout removes 5 spec files from a committed 2,000-file
// tree, reading go-git's objects as `expsync verify --repo` does, and
// reports the ratio to the git CLI doing the same (read-tree into a scratch
// index, rm --cached, write-tree): x-git < 1 means faster than git.
func BenchmarkTreeIDWithout(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("the git CLI is the peer of this benchmark and is not installed")
	}
	dir := benchFolder(b)
	remove := []string{"d00/f0000.bin", "d07/f0007.bin", "d07/f0047.bin", "d19/f0019.bin", "d39/f1999.bin"}
	git := func(env []string, args ...string) string {
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(append(os.Environ(), "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1"), env...)
		out, err := cmd.CombinedOutput()
		if err != nil {
			b.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git(nil, "init", "-q")
	git(nil, "add", "-A")
	root := git(nil, "write-tree")
	scratch := []string{"GIT_INDEX_FILE=" + filepath.Join(b.TempDir(), "index")}
	gitOnce := func() (string, time.Duration) {
		start := time.Now()
		git(scratch, "read-tree", root)
		git(scratch, append([]string{"rm", "--cached", "-q", "--"}, remove...)...)
		return git(scratch, "write-tree"), time.Since(start)
	}
	want, gitTime := gitOnce()

	repo, err := gogit.PlainOpen(dir)
	if err != nil {
		b.Fatal(err)
	}
	b.ResetTimer()
	start := time.Now()
	for i := 0; i < b.N; i++ {
		r, err := tree.GitObjects(repo.Storer, root)
		if err != nil {
			b.Fatal(err)
		}
		got, err := tree.TreeIDWithout(r, "", remove)
		if err != nil {
			b.Fatal(err)
		}
		if string(got) != want {
			b.Fatalf("TreeIDWithout %s, git %s", got, want)
		}
	}
	ours := time.Since(start) / time.Duration(b.N)
	b.StopTimer()
	_, gitTime2 := gitOnce()
	if gitTime2 < gitTime {
		gitTime = gitTime2
	}
	b.ReportMetric(float64(ours)/float64(gitTime), "x-git")
	b.ReportMetric(float64(gitTime.Microseconds()), "git-µs")
}
