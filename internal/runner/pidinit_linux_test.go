package runner

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
)

// pidInitEnv marks the copy of the test binary started as PID 1 of a new
// PID namespace.
const pidInitEnv = "EXPSYNC_TEST_PID_NAMESPACE_INIT"

// TestAsPIDNamespaceInitTheRunnerIsItsOwnReaper: `expsync exec` as PID 1
// of its container starts the command directly — no second expsync
// process (the reaper) charged to the run's memory limit — and still ends
// every process of the run with the command: an escaped process
// (setsid, double fork, its parent gone) is re-parented to PID 1, killed
// and reaped before the run's result is made. With the check disabled, the
// same run goes through the reaper (the command's parent is not PID 1),
// which shows the test tells the two apart.
func TestAsPIDNamespaceInitTheRunnerIsItsOwnReaper(t *testing.T) {
	if os.Getenv(pidInitEnv) == "" {
		if os.Geteuid() != 0 {
			t.Skip("a new PID namespace needs root (CI runs as root); the reaper path is TestNoProcessOutlivesTheRun's")
		}
		// This test again, as PID 1 of a new PID namespace with a mount
		// namespace of its own (for a /proc of that PID namespace).
		cmd := exec.Command(os.Args[0], "-test.run=^TestAsPIDNamespaceInitTheRunnerIsItsOwnReaper$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), pidInitEnv+"=1")
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWPID | syscall.CLONE_NEWNS, Pdeathsig: syscall.SIGKILL}
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS: TestAsPIDNamespaceInitTheRunnerIsItsOwnReaper") {
			t.Fatalf("as PID 1 of a new PID namespace: %v\n%s", err, out)
		}
		return
	}
	if os.Getpid() != 1 {
		t.Fatalf("pid %d: not the init of a new PID namespace", os.Getpid())
	}
	if pidNamespaceInit() {
		t.Fatal("before /proc is mounted for this namespace, /proc/self is not 1: pidNamespaceInit must say no")
	}
	if err := syscall.Mount("", "/", "", syscall.MS_REC|syscall.MS_PRIVATE, ""); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mount("proc", "/proc", "proc", 0, ""); err != nil {
		t.Fatal(err)
	}
	if !pidNamespaceInit() {
		t.Fatal("PID 1 with its own /proc: pidNamespaceInit says no")
	}
	for _, asInit := range []bool{true, false} {
		t.Run("as init "+strconv.FormatBool(asInit), func(t *testing.T) {
			if !asInit {
				pidNamespaceInit = func() bool { return false }
				t.Cleanup(func() { pidNamespaceInit = func() bool { return true } })
			}
			f := newFixture(t)
			f.opts.NoCgroup = true // as in a pod: no cgroup of its own
			f.opts.KillGrace = 200 * time.Millisecond
			dir := t.TempDir()
			ppidFile, pidFile := filepath.Join(dir, "ppid"), filepath.Join(dir, "escaped.pid")
			script := `echo $PPID > ` + ppidFile + `
setsid sh -c 'exec env -i sh -c "echo \$\$ > ` + pidFile + `; exec sleep 30"' </dev/null >/dev/null 2>&1 &
while [ ! -s ` + pidFile + ` ]; do sleep 0.01; done`
			res := f.run(shell(script).build())
			if res.Status != contract.Succeeded {
				t.Fatalf("status %s: %s\n%s", res.Status, res.Error, res.LogTail)
			}
			pid := readPID(t, pidFile)
			ppid := readPID(t, ppidFile)
			if asInit && ppid != 1 {
				t.Errorf("the command's parent is pid %d, want 1 (expsync itself, no reaper in between)", ppid)
			}
			if !asInit && ppid == 1 {
				t.Errorf("with the reaper the command's parent is pid 1: the reaper did not start")
			}
			if alive(pid) {
				t.Errorf("process %d of the run outlived it", pid)
			}
			if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
				t.Errorf("process %d of the run is a zombie: killed but not reaped", pid)
			}
		})
	}
}
