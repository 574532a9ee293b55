package tree_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/expsync/expsync/tree"
)

// benchFolder is 2,000 files of 4 KiB in 40 folders (8 MiB).
func benchFolder(b *testing.B) string {
	dir := b.TempDir()
	data := make([]byte, 4096)
	for i := 0; i < 2000; i++ {
		sub := filepath.Join(dir, fmt.Sprintf("d%02d", i%40))
		if err := os.MkdirAll(sub, 0o755); err != nil {
			b.Fatal(err)
		}
		data[0], data[1] = byte(i), byte(i>>8)
		if err := os.WriteFile(filepath.Join(sub, fmt.Sprintf("f%04d.bin", i)), data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return dir
}

// BenchmarkDirTreeID hashes a working folder from scratch (a fresh Dir each
// time) and reports the ratio to the git CLI doing the same job on the same
// files: `git add -A && git write-tree` into a fresh index (x-git < 1 means
// faster than git; git also writes objects, tree.Dir only hashes).
func BenchmarkDirTreeID(b *testing.B) {
	if _, err := exec.LookPath("git"); err != nil {
		b.Skip("the git CLI is the peer of this benchmark and is not installed")
	}
	dir := benchFolder(b)
	gitDir := b.TempDir()
	gitOnce := func() (string, time.Duration) {
		start := time.Now()
		env := append(os.Environ(), "GIT_DIR="+gitDir, "GIT_WORK_TREE="+dir, "GIT_INDEX_FILE="+filepath.Join(gitDir, "index"),
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		os.Remove(filepath.Join(gitDir, "index"))
		for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}} {
			cmd := exec.Command("git", args...)
			cmd.Env = env
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v\n%s", args, err, out)
			}
		}
		cmd := exec.Command("git", "write-tree")
		cmd.Env = env
		out, err := cmd.Output()
		if err != nil {
			b.Fatal(err)
		}
		return string(out[:40]), time.Since(start)
	}
	want, _ := gitOnce()
	benchDirAgainstGit(b, dir, want, func() time.Duration { _, t := gitOnce(); return t })
}

// benchDirAgainstGit hashes dir with a fresh tree.Dir b.N times, checks the
// tree ID against want (what git recorded) and reports the ratio of our
// time to gitOnce's, run untimed after each of ours.
func benchDirAgainstGit(b *testing.B, dir, want string, gitOnce func() time.Duration) {
	b.Helper()
	var ours, theirs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start := time.Now()
		d, err := tree.NewDir(dir)
		if err != nil {
			b.Fatal(err)
		}
		id, err := tree.TreeHash(d, "")
		d.Close()
		if err != nil {
			b.Fatal(err)
		}
		ours += time.Since(start)
		if string(id) != want {
			b.Fatalf("tree %s, git %s", id, want)
		}
		b.StopTimer()
		theirs += gitOnce()
		b.StartTimer()
	}
	b.ReportMetric(float64(ours)/float64(theirs), "x-git")
	b.ReportMetric(float64(ours.Microseconds())/1000/float64(b.N), "ms/tree")
}
