package runner

import (
	"github.com/expsync/expsync/contract"

	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestNoProcessOutlivesTheRun (issue 9, item 6): a process a run starts in
// a new session, with its environment cleared (so nothing marks it as the
// run's) and re-parented away from the command by a double fork, outlived
// the run, kept a file descriptor on a context file hard-linked from the
// store and rewrote it after the runner's link check: a later run, in a
// new expsync, computed from changed bytes. With the run's reaper it dies
// with the command, before the check, and the store keeps its bytes.
func TestNoProcessOutlivesTheRun(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("the escaped writer opens a read-only store object for writing, which only root can")
	}
	for _, mode := range []string{"cgroup", "reaper", "neither, as before"} {
		reaper := mode != "neither, as before"
		t.Run(mode, func(t *testing.T) {
			if mode == "cgroup" && !cgroupsAvailable() {
				t.Skip("no writable cgroup v2 hierarchy on this machine: the reaper contains runs (tested next)")
			}
			f := newFixture(t)
			f.opts.NoReaper = mode != "reaper"
			f.opts.NoCgroup = mode != "cgroup"
			f.opts.KillGrace = 200 * time.Millisecond
			const genuine = "genuine context bytes\n"
			ctxTree := f.exportContext(map[string]string{"data.txt": genuine})
			pidFile := filepath.Join(t.TempDir(), "escaped.pid")
			// The escaped writer: new session, empty environment, its
			// parent gone; it holds data.txt open and writes 2 s later
			// (time enough for the runner to end it on a loaded machine).
			script := `setsid sh -c 'exec env -i sh -c "exec 3<>data.txt; echo \$\$ > ` + pidFile + `; sleep 2; printf tampered >&3; sleep 30"' </dev/null >/dev/null 2>&1 &
while [ ! -s ` + pidFile + ` ]; do sleep 0.01; done`
			res := f.run(shell(script).context(ctxTree).build())
			if res.Status != contract.Succeeded {
				t.Fatalf("status %s: %s\n%s", res.Status, res.Error, res.LogTail)
			}
			data, err := os.ReadFile(pidFile)
			if err != nil {
				t.Fatal(err)
			}
			pid, _ := strconv.Atoi(strings.TrimSpace(string(data)))
			stored := func() ([]byte, error) {
				rc, err := f.st.Open(context.Background(), shaOf(genuine))
				if err != nil {
					return nil, err
				}
				defer rc.Close()
				got := make([]byte, 64)
				n, _ := rc.Read(got)
				return got[:n], nil
			}
			// Past the writer's write; without the reaper, until the write
			// shows (a loaded machine may run the writer late).
			time.Sleep(2500 * time.Millisecond)
			got, err := stored()
			for deadline := time.Now().Add(30 * time.Second); !reaper && err == nil && string(got) == genuine && time.Now().Before(deadline); {
				time.Sleep(50 * time.Millisecond)
				got, err = stored()
			}
			intact := err == nil && string(got) == genuine
			if reaper {
				if alive(pid) {
					t.Errorf("process %d of the run outlived it", pid)
				}
				if !intact {
					t.Errorf("the store object of data.txt holds %q (%v), want the genuine bytes", got, err)
				}
			} else {
				// The scenario reproduces the bug: the writer lived on
				// and changed the store's bytes after the run ended.
				if !alive(pid) || intact {
					t.Errorf("without the reaper the writer (pid %d, alive %v) left the store intact (%v): the test no longer shows the escape it guards against", pid, alive(pid), intact)
				}
				killIfAlive(pid)
			}
		})
	}
}

func killIfAlive(pid int) {
	if pid > 0 && alive(pid) {
		p, _ := os.FindProcess(pid)
		_ = p.Kill()
	}
}

// TestSameSizeRewriteWithRestoredMtimeIsCaught (issue 9, item 6): a run
// that rewrote a large (> 64 KiB) hard-linked context file in place with
// the same size and put its modification time back passed the check
// (size and mtime for large files), and the store handed the changed bytes
// under the genuine digest to later runs. Every linked file is rehashed
// now: the run fails naming the file and the object is dropped.
func TestSameSizeRewriteWithRestoredMtimeIsCaught(t *testing.T) {
	f := newFixture(t)
	genuine := strings.Repeat("0123456789abcdef", 8<<10) // 128 KiB
	tr := f.exportContext(map[string]string{"big.bin": genuine})
	res := f.run(shell(`touch -r big.bin stamp; chmod u+w big.bin; printf X | dd of=big.bin bs=1 seek=100 conv=notrunc 2>/dev/null; touch -r stamp big.bin`).context(tr).build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "wrote to big.bin in place") {
		t.Fatalf("status %s error %q; want Failed naming big.bin", res.Status, res.Error)
	}
	if ok, _ := f.st.Has(context.Background(), shaOf(genuine)); ok {
		if got := f.blob(shaOf(genuine)); got != genuine {
			t.Fatalf("the store hands changed bytes under the genuine digest")
		}
	}
}
