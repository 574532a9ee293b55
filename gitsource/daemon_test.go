package gitsource

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The benchmarks' git daemon must not outlive them: its cleanup used to
// kill only the `git daemon` wrapper and leave git-daemon running.
func TestGitDaemonLeavesNoProcessBehind(t *testing.T) {
	root := t.TempDir()
	runGit(t, root, "init", "-q", "--bare", "-b", "main", "r.git")
	t.Run("serve", func(t *testing.T) {
		url := gitDaemon(t, root)
		// One request, so a per-connection process was forked too.
		runGit(t, root, "ls-remote", url+"/r.git")
		if len(processesServing(root)) == 0 {
			t.Fatal("no process serving the folder was found: the check below would prove nothing")
		}
	}) // the subtest's cleanup stops the daemon
	deadline := time.Now().Add(3 * time.Second)
	for {
		left := processesServing(root)
		if len(left) == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("still running after cleanup: %s", strings.Join(left, "; "))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// processesServing lists "pid cmdline" of live processes whose command
// line names root as the daemon's base path.
func processesServing(root string) []string {
	pids, _ := filepath.Glob("/proc/[0-9]*/cmdline")
	var out []string
	for _, p := range pids {
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte("--base-path="+root)) {
			continue
		}
		out = append(out, filepath.Base(filepath.Dir(p))+" "+string(bytes.ReplaceAll(data, []byte{0}, []byte{' '})))
	}
	return out
}
