package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
	"github.com/expsync/expsync/store"
)

// Issue 9, item 6, through the built binary: a process a run starts in a
// new session, with an empty environment (no EXPSYNC_RUN_ID) and its
// parent gone, keeps a descriptor on a context file hard-linked from the
// store and rewrites it once the run is over. A later run of another
// experiment, in a new expsync process, computed from the changed bytes
// while its provenance named the genuine tree. Both ways expsync contains
// a run are tested: a cgroup v2 group of its own (where expsync may make
// one) and the reaper, forced by hiding the cgroup2 mount from expsync in
// a mount namespace of its own, as on a machine without one.

const (
	genuineContext = "genuine context bytes\n"
	changedContext = "CHANGED context bytes\n" // the same size: only a rehash tells
)

// writerScript is the lingering writer, started as `sh writer.sh PIDFILE
// GO DONE` from the context folder: it opens data.txt for writing, says
// who it is (PID and start time, so a reused PID is not taken for it),
// waits for GO and then rewrites the file in place through its
// descriptor.
const writerScript = `[ "$(id -u)" = 0 ] || chmod u+w data.txt
exec 3<>data.txt
echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" > "$1.tmp" && mv "$1.tmp" "$1"
while [ ! -e "$2" ]; do sleep 0.05; done
printf 'CHANGED context bytes\n' >&3
: > "$3"
exec sleep 600
`

// lingering is the writer as the test sees it.
type lingering struct {
	t                     *testing.T
	pidFile, goFile, done string
	pid                   int
	ticks                 uint64
}

func newLingering(t *testing.T) *lingering {
	dir := t.TempDir()
	w := &lingering{t: t, pidFile: filepath.Join(dir, "writer.pid"), goFile: filepath.Join(dir, "go"), done: filepath.Join(dir, "written")}
	t.Cleanup(func() {
		if w.alive() {
			_ = syscall.Kill(w.pid, syscall.SIGKILL)
		}
	})
	return w
}

// start is the shell that starts the writer so that nothing marks it as
// the run's: a new session, an empty environment (but PATH), and its
// parent exits at once.
func (w *lingering) start() string {
	return `setsid sh -c "env -i PATH=/usr/bin:/bin sh writer.sh ` + w.pidFile + ` ` + w.goFile + ` ` + w.done + ` &" </dev/null >/dev/null 2>&1
while [ ! -s ` + w.pidFile + ` ]; do sleep 0.05; done`
}

func (w *lingering) read() {
	w.t.Helper()
	data, err := os.ReadFile(w.pidFile)
	if err != nil {
		w.t.Fatal(err)
	}
	f := strings.Fields(string(data))
	if len(f) != 2 {
		w.t.Fatalf("writer's pid file: %q", data)
	}
	w.pid, _ = strconv.Atoi(f[0])
	w.ticks, _ = strconv.ParseUint(f[1], 10, 64)
}

// alive reports whether the writer lives (not a zombie, not another
// process that reused its PID).
func (w *lingering) alive() bool {
	if w.pid <= 0 {
		return false
	}
	data, err := os.ReadFile("/proc/" + strconv.Itoa(w.pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(data)
	i := strings.LastIndexByte(s, ')')
	f := strings.Fields(s[i+1:])
	return len(f) > 19 && f[0] != "Z" && f[19] == strconv.FormatUint(w.ticks, 10)
}

// release lets a live writer write, and waits until it wrote or is gone.
func (w *lingering) release() (wrote bool) {
	w.t.Helper()
	if err := os.WriteFile(w.goFile, nil, 0o644); err != nil {
		w.t.Fatal(err)
	}
	waitUntil(w.t, "the writer wrote or ended", func() bool {
		_, err := os.Stat(w.done)
		return err == nil || !w.alive()
	})
	_, err := os.Stat(w.done)
	return err == nil
}

// waitUntil polls cond; what it waits for is guaranteed to happen, the
// deadline only ends a test that would hang.
func waitUntil(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Minute)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// containment sets the lab up for mode and skips, saying why, where the
// machine cannot show it.
func containment(t *testing.T, b *binLab, mode string) {
	t.Helper()
	switch mode {
	case "cgroup":
		if !cgroupWritable() {
			t.Skip("expsync cannot make cgroup v2 groups here (no cgroup2 mount, or no write access): its runs are contained by the reaper, tested beside")
		}
	case "reaper":
		if _, err := exec.LookPath("unshare"); err != nil {
			t.Skip("unshare (util-linux) is needed to hide the cgroup2 mount from expsync")
		}
		// A mount namespace of expsync's own without the cgroup2 mount:
		// expsync sees a machine without cgroup v2 and falls back to the
		// reaper. A non-root user needs a user namespace to make one.
		b.wrap = []string{"unshare", "--mount", "--propagation", "private"}
		if os.Geteuid() != 0 {
			b.wrap = []string{"unshare", "--user", "--map-root-user", "--mount", "--propagation", "private"}
		}
		b.wrap = append(b.wrap, "sh", "-c", `umount -l -a -t cgroup2 2>/dev/null; exec "$0" "$@"`)
	}
}

// cgroupParentOfTests is the cgroup v2 group this test (and so the
// expsync it starts) runs in; "" without a cgroup2 mount.
func cgroupParentOfTests() string {
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if !platform.IsCgroup2(m) {
			continue
		}
		data, _ := os.ReadFile("/proc/self/cgroup")
		for _, line := range strings.Split(string(data), "\n") {
			if p, ok := strings.CutPrefix(line, "0::"); ok {
				return filepath.Join(m, p)
			}
		}
	}
	return ""
}

func cgroupWritable() bool {
	parent := cgroupParentOfTests()
	if parent == "" {
		return false
	}
	probe := filepath.Join(parent, fmt.Sprintf("probe-%d", os.Getpid()))
	if os.Mkdir(probe, 0o755) != nil {
		return false
	}
	return os.Remove(probe) == nil
}

// checkContained checks that the run of folder ran the way mode says: in
// an attempt group below an expsync group, or below the reaper.
func checkContained(t *testing.T, folder, mode string) {
	t.Helper()
	where, _ := os.ReadFile(filepath.Join(folder, "outputs", "where.txt"))
	parent, _ := os.ReadFile(filepath.Join(folder, "outputs", "parent.txt"))
	inGroup := strings.Contains(string(where), "/expsync-")
	reaped := strings.Contains(string(parent), "__expsync_run_reaper__")
	if mode == "cgroup" && !inGroup || mode == "reaper" && (!reaped || inGroup) {
		t.Errorf("the run was not contained by the %s: /proc/self/cgroup %q, parent %q", mode, where, parent)
	}
}

// contextFiles is the shared context folder of both experiments.
func contextFiles() map[string]string {
	return map[string]string{"code/data.txt": genuineContext, "code/writer.sh": writerScript}
}

// recordWhere records how the command is contained: its cgroup and its
// parent's command line.
const recordWhere = `cat /proc/self/cgroup > where.txt; tr '\0' ' ' < /proc/$PPID/cmdline > parent.txt
`

// checkLaterRunSawGenuineBytes checks the run of experiment "later": it
// succeeded, read the genuine bytes, verifies, and the store's object of
// data.txt holds the genuine bytes.
func checkLaterRunSawGenuineBytes(t *testing.T, b *binLab) {
	t.Helper()
	folder, rec := b.runRecord("later")
	seen, _ := os.ReadFile(filepath.Join(folder, "outputs", "seen.txt"))
	if rec["status"] != "Succeeded" || string(seen) != genuineContext {
		t.Errorf("the later run: status %v (%v), read %q; want Succeeded from %q", rec["status"], rec["reason"], seen, genuineContext)
	}
	if code, stdout, stderr := b.verify("main"); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	st, err := store.OpenLocal(b.store)
	if err != nil {
		t.Fatal(err)
	}
	if rc, err := st.Open(context.Background(), contract.SHA256Hex([]byte(genuineContext))); err == nil {
		data, _ := io.ReadAll(rc)
		rc.Close()
		if string(data) != genuineContext {
			t.Errorf("the store hands %q under the digest of %q", data, genuineContext)
		}
	}
}

// TestNoProcessOfARunOutlivesItThroughTheBinary: the run's writer is gone
// when `expsync run` ends, and the later run, in a new expsync, reads the
// genuine bytes.
func TestNoProcessOfARunOutlivesItThroughTheBinary(t *testing.T) {
	for _, mode := range []string{"cgroup", "reaper"} {
		t.Run(mode, func(t *testing.T) {
			b := newBinLab(t)
			containment(t, b, mode)
			w := newLingering(t)
			files := contextFiles()
			files["experiments/first.yaml"] = experimentYAML("first", recordWhere+w.start(),
				"  context: code\n  outputs: [where.txt, parent.txt]\n")
			b.Commit("a run that leaves a writer behind", files)
			b.mustRun()
			folder, rec := b.runRecord("first")
			if rec["status"] != "Succeeded" {
				t.Fatalf("first run: %v (%v)", rec["status"], rec["reason"])
			}
			checkContained(t, folder, mode)
			w.read()
			if w.alive() {
				t.Errorf("process %d of the run outlived it", w.pid)
				if w.release() {
					t.Logf("it rewrote data.txt after the run's link check")
				}
			}

			b.commitUnsigned("another experiment on the same context", map[string]string{
				"experiments/later.yaml": experimentYAML("later", "cat data.txt > seen.txt", "  context: code\n  outputs: [seen.txt]\n"),
			})
			b.mustRun()
			checkLaterRunSawGenuineBytes(t, b)
		})
	}
}

// TestKilledExpsyncLeavesNoWriterBehind: expsync is killed (SIGKILL) while
// the run with the writer goes on. With the reaper, the reaper gets
// expsync's death as a signal (Pdeathsig) and ends every process of the
// run; in a cgroup, the next expsync ends what the killed one left in its
// group before it runs anything, and removes the group. Whatever the
// writer managed to write before that, the next expsync rehashes the
// context before its first run of it, so the later run reads the genuine
// bytes.
func TestKilledExpsyncLeavesNoWriterBehind(t *testing.T) {
	for _, mode := range []string{"cgroup", "reaper"} {
		t.Run(mode, func(t *testing.T) {
			b := newBinLab(t)
			containment(t, b, mode)
			w := newLingering(t)
			once := filepath.Join(t.TempDir(), "once")
			files := contextFiles()
			// The first time it starts the writer and waits to be killed;
			// rerun after the kill, it ends at once.
			files["experiments/first.yaml"] = experimentYAML("first", `if [ -e `+once+` ]; then echo again > where.txt; echo again > parent.txt; exit 0; fi
: > `+once+`
`+recordWhere+w.start()+`
while :; do sleep 1; done`, "  context: code\n  outputs: [where.txt, parent.txt]\n")
			b.Commit("a run that leaves a writer behind", files)

			cmd := b.command(b.runArgs()...)
			var out strings.Builder
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			exited := make(chan struct{})
			go func() { _ = cmd.Wait(); close(exited) }()
			waitUntil(t, "the writer started", func() bool {
				select {
				case <-exited:
					t.Fatalf("expsync run ended before its run started the writer:\n%s", out.String())
				default:
				}
				data, err := os.ReadFile(w.pidFile)
				return err == nil && len(data) > 0
			})
			w.read()
			killed := cmd.Process.Pid
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-exited
			if w.release() {
				t.Logf("the writer rewrote data.txt after expsync was killed")
			}

			b.commitUnsigned("another experiment on the same context", map[string]string{
				"experiments/later.yaml": experimentYAML("later", "cat data.txt > seen.txt", "  context: code\n  outputs: [seen.txt]\n"),
			})
			b.mustRun()
			if w.alive() {
				t.Errorf("process %d of the killed expsync's run lives on after the next expsync", w.pid)
			}
			if parent := cgroupParentOfTests(); parent != "" {
				left, _ := filepath.Glob(filepath.Join(parent, fmt.Sprintf("expsync-%d-*", killed)))
				if len(left) > 0 {
					t.Errorf("the killed expsync's cgroup is left: %v", left)
				}
			}
			checkLaterRunSawGenuineBytes(t, b)
		})
	}
}
