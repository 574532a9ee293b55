package runner

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
)

func ownCgroup() string {
	return filepath.Join(cgroupParent(), ownGroupName())
}

// TestCgroupGoesWithTheLastRun (issue 9): every expsync process left an
// empty cgroup folder, expsync-<pid>, behind when it exited. It exists
// now only while runs do: the run's command runs in an attempt group
// below it, and when the run is over neither is left.
func TestCgroupGoesWithTheLastRun(t *testing.T) {
	if !cgroupsAvailable() {
		t.Skip("no writable cgroup v2 hierarchy on this machine: runs are contained by the reaper, which makes no folder")
	}
	f := newFixture(t)
	res := f.run(shell(`cat /proc/self/cgroup > where.txt`).outputs("where.txt").build())
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	where := f.blob(res.Outputs[0].SHA256)
	rel, _ := filepath.Rel(cgroupMount(), ownCgroup())
	if !strings.Contains(where, "0::/"+rel+"/") {
		t.Errorf("the command ran in %q, not in an attempt group below %s", where, ownCgroup())
	}
	if _, err := os.Stat(ownCgroup()); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s is left after the run (%v)", ownCgroup(), err)
	}
}

// cgroupMount is the mount point of the unified hierarchy above the
// process's group.
func cgroupMount() string {
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if platform.IsCgroup2(m) {
			return m
		}
	}
	return ""
}

// TestStaleCgroupsOfKilledExpsyncsAreCleared (issue 9): a killed expsync
// left its group behind, with an attempt group below it and, when a run's
// process had left the command's session, that process still running
// (Pdeathsig ends the command only). ClearStaleCgroups ends that process
// and removes both groups, also when the dead owner's PID now belongs to
// another process (another start time), and a group named as expsync did
// before (no start time) whose PID is free. Groups whose owner lives are
// left alone: one whose PID and start time are a live process's, one of
// the old naming whose PID is a live process, and one whose owner holds
// its lock (a live expsync in another PID namespace, whose PID this
// process cannot see).
func TestStaleCgroupsOfKilledExpsyncsAreCleared(t *testing.T) {
	if !cgroupsAvailable() {
		t.Skip("no writable cgroup v2 hierarchy on this machine")
	}
	parent := cgroupParent()
	deadPID := func() int {
		c := exec.Command("true")
		if err := c.Run(); err != nil {
			t.Fatal(err)
		}
		return c.Process.Pid
	}
	named := func(pid int) string {
		ticks, err := ProcessStartTicks(pid)
		if err != nil {
			t.Fatal(err)
		}
		return fmt.Sprintf("%s%d-%d", cgroupPrefix, pid, ticks)
	}
	mkGroup := func(name string) string {
		dir := filepath.Join(parent, name)
		for _, d := range []string{dir, filepath.Join(dir, "run-a1-x")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
		t.Cleanup(func() {
			_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
			_ = os.Remove(filepath.Join(dir, "run-a1-x"))
			_ = os.Remove(dir)
		})
		return dir
	}
	// A process of a killed expsync's run, in its attempt group, in a
	// session of its own.
	startIn := func(dir string) *exec.Cmd {
		fd, err := unix.Open(filepath.Join(dir, "run-a1-x"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		c := exec.Command("sleep", "600")
		c.SysProcAttr = &syscall.SysProcAttr{Setsid: true, UseCgroupFD: true, CgroupFD: fd}
		if err := c.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = c.Process.Kill(); _ = c.Wait() })
		return c
	}

	liveOwner := exec.Command("sleep", "600")
	if err := liveOwner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = liveOwner.Process.Kill(); _ = liveOwner.Wait() })
	livePID := liveOwner.Process.Pid

	stale := mkGroup(fmt.Sprintf("%s%d-%d", cgroupPrefix, deadPID(), 12345))
	lingering := startIn(stale)
	reused := mkGroup(fmt.Sprintf("%s%d-%d", cgroupPrefix, livePID, 1)) // the PID's process started later
	lingeringReused := startIn(reused)
	oldNaming := mkGroup(fmt.Sprintf("%s%d", cgroupPrefix, deadPID()))

	live := mkGroup(named(livePID))
	liveRun := startIn(live)
	liveOldNaming := mkGroup(fmt.Sprintf("%s%d", cgroupPrefix, livePID))

	locked := mkGroup(fmt.Sprintf("%s%d-%d", cgroupPrefix, deadPID(), 12345))
	fd, err := unix.Open(locked, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err != nil {
		t.Fatal(err)
	}
	lockedRun := startIn(locked)

	if err := clearStaleCgroups(parent); err != nil {
		t.Fatal(err)
	}
	// Wait returns once the process ended: it was killed, or the test
	// hangs (and times out) saying so.
	for _, c := range []*exec.Cmd{lingering, lingeringReused} {
		if err := c.Wait(); err == nil || !strings.Contains(err.Error(), "killed") {
			t.Errorf("a killed expsync's run process ended with %v, want killed", err)
		}
	}
	for _, dir := range []string{stale, reused, oldNaming} {
		if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a killed expsync's group is left: %v", err)
		}
	}
	for name, c := range map[string]*exec.Cmd{"a live owner's": liveRun, "a locked": lockedRun} {
		if err := c.Process.Signal(syscall.Signal(0)); err != nil {
			t.Errorf("the run process in %s group was ended: %v", name, err)
		}
	}
	for _, dir := range []string{live, liveOldNaming, locked} {
		if _, err := os.Stat(filepath.Join(dir, "run-a1-x")); err != nil {
			t.Errorf("%s was removed: %v", dir, err)
		}
	}
}
