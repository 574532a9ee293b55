package runner

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Where the machine lets expsync make cgroup v2 groups (the unified
// hierarchy, also when mounted beside v1 controllers as here: cgroup v1
// "hybrid"), each attempt's command starts inside a group of its own
// (CLONE_INTO_CGROUP, so not even its first instruction runs outside),
// and when the command exits every process still in the group is killed
// at once with cgroup.kill: membership survives setsid, a cleared
// environment and double forks, and costs a mkdir per attempt. Where no
// group can be made (no cgroup2 mount, or no write access: a
// non-root user without delegation), the run's reaper process does the
// same job (reaper.go).

var cgroupBase = sync.OnceValue(findCgroupBase)

// findCgroupBase makes expsync's own group below the group it runs in, on
// the unified hierarchy, and returns it ("" when it cannot).
func findCgroupBase() string {
	var mount string
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		var st unix.Statfs_t
		if unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC {
			mount = m
			break
		}
	}
	if mount == "" {
		return ""
	}
	own := "/"
	if f, err := os.Open("/proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
				own = p
			}
		}
		f.Close()
	}
	base := filepath.Join(mount, own, fmt.Sprintf("expsync-%d", os.Getpid()))
	if err := os.Mkdir(base, 0o755); err != nil && !os.IsExist(err) {
		return ""
	}
	return base
}

// runGroup is the cgroup of one attempt.
type runGroup struct {
	dir  string
	fd   int
	done bool
}

// cgroupStartFailed is set when a command could not start in its group
// (a kernel without CLONE_INTO_CGROUP): later attempts use the reaper.
var cgroupStartFailed atomic.Bool

// newRunGroup makes the attempt's group; nil when cgroups are unavailable.
func newRunGroup(name string) *runGroup {
	base := cgroupBase()
	if base == "" || cgroupStartFailed.Load() {
		return nil
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		return nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		return nil
	}
	return &runGroup{dir: dir, fd: fd}
}

// killAll kills every process of the group and waits (up to a few
// seconds) until it is empty, then removes it.
func (g *runGroup) killAll() {
	if g == nil || g.done {
		return
	}
	g.done = true
	_ = os.WriteFile(filepath.Join(g.dir, "cgroup.kill"), []byte("1"), 0o644)
	for i := 0; i < 500; i++ {
		data, err := os.ReadFile(filepath.Join(g.dir, "cgroup.events"))
		if err != nil || strings.Contains(string(data), "populated 0") {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	_ = unix.Close(g.fd)
	_ = os.Remove(g.dir)
}
