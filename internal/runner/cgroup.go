package runner

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/expsync/expsync/internal/platform"
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
//
// The attempts' groups live in one group of this process,
// expsync-<pid>-<start time>, below the group it runs in. It exists only
// while runs do: made by the first attempt, removed with the last one.
// The name tells another expsync whether the owner lives (a PID reused by
// another process has another start time), and this process holds a lock
// (flock) on the group meanwhile, for an owner in another PID namespace.
// A killed expsync leaves its group behind, maybe with processes of its
// runs still in it (a run whose command called setsid survives its
// expsync; the command itself dies by Pdeathsig): ClearStaleCgroups ends
// those processes and removes the groups, as ClearWorkRoot does for the
// work folders.

// cgroupParent is the group this process runs in on the unified
// hierarchy ("" when there is none).
var cgroupParent = sync.OnceValue(findCgroupParent)

func findCgroupParent() string {
	var mount string
	for _, m := range []string{"/sys/fs/cgroup", "/sys/fs/cgroup/unified"} {
		if platform.IsCgroup2(m) {
			mount = m
			break
		}
	}
	if mount == "" {
		return ""
	}
	return filepath.Join(mount, platform.OwnCgroup())
}

const cgroupPrefix = "expsync-"

// processGroup is this process's group and how many attempts use it.
var processGroup struct {
	sync.Mutex
	dir   string
	fd    int // open (and flocked) while dir exists
	users int
}

// cgroupsUnusable is set once making a group failed (no write access):
// later attempts do not try again.
var cgroupsUnusable atomic.Bool

// acquireProcessGroup returns this process's group, made (and the groups
// killed predecessors left cleared) when no attempt uses it yet; "" when
// no group can be made.
func acquireProcessGroup() string {
	parent := cgroupParent()
	if parent == "" || cgroupsUnusable.Load() {
		return ""
	}
	g := &processGroup
	g.Lock()
	defer g.Unlock()
	if g.users > 0 {
		g.users++
		return g.dir
	}
	staleOnce.Do(func() { _ = clearStaleCgroups(parent) })
	dir := filepath.Join(parent, ownGroupName())
	if err := os.Mkdir(dir, 0o755); err != nil && !errors.Is(err, fs.ErrExist) {
		cgroupsUnusable.Store(true)
		return ""
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		cgroupsUnusable.Store(true)
		return ""
	}
	// Another expsync sweeping this parent may take the lock between the
	// mkdir and here, find a group whose PID it cannot see (another PID
	// namespace) and remove it: then this fd names a removed group.
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil || !sameDir(fd, dir) {
		_ = unix.Close(fd)
		return ""
	}
	g.dir, g.fd, g.users = dir, fd, 1
	return dir
}

// releaseProcessGroup removes this process's group when the last attempt
// using it is done.
func releaseProcessGroup() {
	g := &processGroup
	g.Lock()
	defer g.Unlock()
	if g.users--; g.users > 0 {
		return
	}
	_ = os.Remove(g.dir) // fails while a group below is left: the next sweep's
	_ = unix.Close(g.fd)
	g.dir, g.fd = "", -1
}

// ownGroupName is expsync-<pid>-<start time in clock ticks since boot>.
func ownGroupName() string {
	ticks, _ := ProcessStartTicks(os.Getpid())
	return fmt.Sprintf("%s%d-%d", cgroupPrefix, os.Getpid(), ticks)
}

// ownerLives reports whether the group name's owner may be alive: its PID
// is a live process with the start time the name records (a name without
// one, as expsync made them before, counts any process with the PID).
func ownerLives(name string) (lives, ok bool) {
	rest, found := strings.CutPrefix(name, cgroupPrefix)
	pidText, ticksText, withTicks := strings.Cut(rest, "-")
	pid, err := strconv.Atoi(pidText)
	if !found || err != nil || pid <= 0 {
		return false, false
	}
	if !withTicks {
		return syscall.Kill(pid, 0) != syscall.ESRCH, true
	}
	ticks, err := strconv.ParseUint(ticksText, 10, 64)
	if err != nil {
		return false, false
	}
	now, err := ProcessStartTicks(pid)
	return err == nil && now == ticks, true
}

func sameDir(fd int, dir string) bool {
	var a, b unix.Stat_t
	return unix.Fstat(fd, &a) == nil && unix.Stat(dir, &b) == nil && a.Dev == b.Dev && a.Ino == b.Ino
}

var staleOnce sync.Once

// ClearStaleCgroups ends the processes left in the cgroups of expsync
// processes that were killed (runs' processes that left their session)
// and removes those groups, with the attempt groups below them. A group
// whose owner lives — its PID and start time are a live process's, or it
// holds the group's lock — is never touched. The executor calls it when it opens, before
// recovering runs; the first run of a process calls it too.
func ClearStaleCgroups() error {
	parent := cgroupParent()
	if parent == "" {
		return nil
	}
	var err error
	staleOnce.Do(func() { err = clearStaleCgroups(parent) })
	return err
}

func clearStaleCgroups(parent string) error {
	entries, err := os.ReadDir(parent)
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		lives, ok := ownerLives(e.Name())
		if !e.IsDir() || !ok || lives {
			continue
		}
		if err := clearStaleCgroup(filepath.Join(parent, e.Name())); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// clearStaleCgroup removes the group dir of a dead owner, killing what is
// left in it first, unless someone holds its lock.
func clearStaleCgroup(dir string) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil // gone meanwhile
	}
	defer unix.Close(fd)
	if unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB) != nil {
		return nil // held: its owner lives (in another PID namespace)
	}
	// cgroup.kill kills every process of the group and of the groups below.
	if !waitEmpty(dir, true) {
		return fmt.Errorf("cgroup %s: processes left after cgroup.kill", dir)
	}
	var dirs []string
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() {
			dirs = append(dirs, p)
		}
		return nil
	})
	var errs []error
	for i := len(dirs) - 1; i >= 0; i-- { // the deepest first
		if err := os.Remove(dirs[i]); err != nil && !errors.Is(err, fs.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove cgroup of a killed expsync: %w", err))
		}
	}
	return errors.Join(errs...)
}

// waitEmpty waits until no process is left in the group dir (or below),
// killing them first when kill is set. Processes that got SIGKILL end
// without running another instruction of their own, but leaving takes
// them a moment: the wait is bounded only to survive a process stuck in
// the kernel (an unreachable NFS server), not to save time.
func waitEmpty(dir string, kill bool) bool {
	if kill {
		_ = os.WriteFile(filepath.Join(dir, "cgroup.kill"), []byte("1"), 0o644)
	}
	for i := 0; i < 6000; i++ {
		data, err := os.ReadFile(filepath.Join(dir, "cgroup.events"))
		if err != nil || strings.Contains(string(data), "populated 0") {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
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
	if cgroupStartFailed.Load() {
		return nil
	}
	base := acquireProcessGroup()
	if base == "" {
		return nil
	}
	dir := filepath.Join(base, name)
	if err := os.Mkdir(dir, 0o755); err != nil {
		releaseProcessGroup()
		return nil
	}
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		_ = os.Remove(dir)
		releaseProcessGroup()
		return nil
	}
	return &runGroup{dir: dir, fd: fd}
}

// killAll kills every process of the group and waits until it is empty,
// then removes it (and this process's group with the last attempt).
func (g *runGroup) killAll() {
	if g == nil || g.done {
		return
	}
	g.done = true
	waitEmpty(g.dir, true)
	_ = unix.Close(g.fd)
	_ = os.Remove(g.dir)
	releaseProcessGroup()
}
