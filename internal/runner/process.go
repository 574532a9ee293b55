package runner

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
)

type processSpec struct {
	dir, logPath string
	env          []string
	timeout      time.Duration
	attempt      int
}

// processResult is what the process did; log is the captured output.
type processResult struct {
	exitCode     int
	signal       string
	signalNumber int
	timedOut     bool
	cancelled    bool
	graceExpired bool // SIGTERM was ignored: SIGKILL after the grace period
	usage        contract.Usage
	startedAt    time.Time // zero when the command did not start
	log          *logCapture
	startKind    outcomeKind // when the command did not start: infra or fatal
}

// runProcess starts the command as the leader of a new process group, waits
// for it under the timeout, and then kills whatever is left of the group.
func (r *attemptRunner) runProcess(ctx context.Context, spec processSpec) (processResult, error) {
	res := processResult{exitCode: -1}
	logw, err := newLogCapture(spec.logPath, r.logLimit(), r.secrets)
	if err != nil {
		res.startKind = outcomeInfra
		return res, fmt.Errorf("%w: create log: %v", errNotStarted, err)
	}
	res.log = logw
	prog, err := lookPath(r.c.Command[0], spec.dir, r.opts.PATH)
	if err != nil {
		fmt.Fprintf(logw, "expsync: %v\nexpsync: PATH=%s\n", err, r.opts.PATH)
		logw.close()
		res.startKind = outcomeFatal
		res.exitCode = 127
		if errors.Is(err, errNotExecutable) {
			res.exitCode = 126
		}
		return res, fmt.Errorf("%w: %v", errNotStarted, err)
	}
	pr, pw, err := os.Pipe()
	if err != nil {
		logw.close()
		res.startKind = outcomeInfra
		return res, fmt.Errorf("%w: pipe: %v", errNotStarted, err)
	}
	cmd, group, reaped, asInit := r.command(prog, spec, pw)
	defer group.killAll()
	copied := make(chan struct{})
	go func() {
		defer close(copied)
		_, _ = io.Copy(logw, pr)
	}()
	start := time.Now()
	err = cmd.Start()
	pw.Close()
	if err != nil {
		if group != nil {
			cgroupStartFailed.Store(true) // the retry starts below the reaper
		}
		pr.Close()
		<-copied
		logw.close()
		res.startKind = outcomeInfra
		if errors.Is(err, fs.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
			res.startKind, res.exitCode = outcomeFatal, 126
		}
		return res, fmt.Errorf("%w: start %s: %v", errNotStarted, r.c.Command[0], err)
	}
	pgid := cmd.Process.Pid
	res.startedAt = start.UTC()
	sampler := startPeakSampler(pgid, reaped)
	terminate, kill := stoppers(pgid, reaped, group)
	if r.opts.OnStart != nil {
		ticks, _ := ProcessStartTicks(pgid)
		r.opts.OnStart(Started{RunID: r.c.RunID, Attempt: spec.attempt, PID: pgid, StartTicks: ticks, WorkDir: spec.dir})
	}

	stop := watchDeadline(ctx, spec.timeout, r.opts.KillGrace, terminate, kill)
	werr := cmd.Wait()
	sampled := sampler.stop()
	stop.exited()
	// Whatever the leader left behind in its group goes with it, and so do
	// the descendants seen while it ran that left the group (setsid).
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	group.killAll() // every process of the run, wherever it went
	if asInit {
		// Orphans of the run were re-parented to this process: they go
		// (and are reaped) before the run's files are checked.
		killDescendants()
	}
	killEscaped(sampler.seen, pgid, r.c.RunID)
	res.usage.WallSeconds = time.Since(start).Seconds()
	res.timedOut, res.cancelled, res.graceExpired = stop.timedOut, stop.cancelled && !stop.timedOut, stop.graceExpired

	// A process that left the group (setsid) may still hold the pipe: stop
	// reading after the grace period rather than hang.
	select {
	case <-copied:
	case <-time.After(r.opts.KillGrace):
		pr.Close()
		<-copied
	}
	pr.Close()
	logw.close()

	if cmd.ProcessState == nil {
		return res, fmt.Errorf("wait for %s: %v", r.c.Command[0], werr)
	}
	res.exitedAs(cmd.ProcessState, sampled)
	return res, nil
}

// command is the run's process: prog with the contract's arguments in
// the run's work folder, its output into out, the leader of a new process
// group. Every process of the run ends with it: in a cgroup of its own
// where the machine offers one (cgroup.go), else below the run's reaper
// (reaped; reaper.go) or, as PID 1 of a PID namespace (a pod), below this
// process itself (asInit). The caller kills what is left of group (nil
// without a cgroup) when it is done.
func (r *attemptRunner) command(prog string, spec processSpec, out *os.File) (cmd *exec.Cmd, group *runGroup, reaped, asInit bool) {
	path, args := prog, r.c.Command
	if !r.opts.NoCgroup {
		group = newRunGroup(filepath.Base(spec.dir))
	}
	// As PID 1 of its namespace this process is the run's reaper itself
	// (pidinit.go): no second expsync in the run's memory.
	asInit = group == nil && !r.opts.NoReaper && pidNamespaceInit()
	if exe := reaperPath(); group == nil && exe != "" && !r.opts.NoReaper && !asInit {
		path, args, reaped = exe, append([]string{"expsync-run", reaperArg, prog}, r.c.Command...), true
	}
	cmd = &exec.Cmd{
		Path:        path,
		Args:        args,
		Dir:         spec.dir,
		Env:         spec.env,
		Stdin:       devNull(),
		Stdout:      out,
		Stderr:      out,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true},
	}
	// The direct child dies with this process (its thread, in fact: Go
	// keeps threads alive unless LockOSThread'ed goroutines exit).
	platform.DieWithParent(cmd.SysProcAttr, syscall.SIGKILL)
	if group != nil {
		platform.StartInCgroup(cmd.SysProcAttr, group.fd)
	}
	if reaped {
		// The reaper catches it and kills every process of the run before
		// it exits: SIGKILL would leave the ones that left the command's
		// session to init when expsync dies.
		platform.DieWithParent(cmd.SysProcAttr, syscall.SIGUSR1)
	}
	return cmd, group, reaped, asInit
}

// stoppers returns how to ask the run started as pgid to stop (terminate)
// and how to end it (kill). Through the reaper, which passes SIGTERM to
// the command's group and on SIGUSR1 kills every process of the run;
// without it, to the command's group; with a cgroup, kill ends the group.
func stoppers(pgid int, reaped bool, group *runGroup) (terminate, kill func()) {
	terminate, kill = func() { _ = syscall.Kill(-pgid, syscall.SIGTERM) }, func() { _ = syscall.Kill(-pgid, syscall.SIGKILL) }
	if reaped {
		terminate = func() { _ = syscall.Kill(pgid, syscall.SIGTERM) }
		kill = func() { _ = syscall.Kill(pgid, syscall.SIGUSR1) }
	}
	if group != nil {
		kill = group.killAll
	}
	return terminate, kill
}

// deadline watches a started process: when its timeout passes or its
// context ends it terminates it, and kills it if it is still running after
// the grace period. Its fields are set once exited returns.
type deadline struct {
	waited, done                      chan struct{}
	timedOut, cancelled, graceExpired bool
}

func watchDeadline(ctx context.Context, timeout, grace time.Duration, terminate, kill func()) *deadline {
	d := &deadline{waited: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(d.done)
		timer := time.NewTimer(timeout)
		defer timer.Stop()
		select {
		case <-d.waited:
			return
		case <-timer.C:
			d.timedOut = true
		case <-ctx.Done():
			d.cancelled = true
		}
		terminate()
		graceTimer := time.NewTimer(grace)
		defer graceTimer.Stop()
		select {
		case <-d.waited:
		case <-graceTimer.C:
			d.graceExpired = true
			kill()
		}
	}()
	return d
}

// exited tells the watcher that the process was waited for, and waits for
// the watcher to finish.
func (d *deadline) exited() {
	close(d.waited)
	<-d.done
}

// exitedAs records how the process ended (its exit code or signal) and
// what it used; sampled is the peak the memory sampler saw.
func (res *processResult) exitedAs(state *os.ProcessState, sampled int64) {
	if ru, ok := state.SysUsage().(*syscall.Rusage); ok && ru != nil {
		res.usage.CPUSeconds = tvSeconds(ru.Utime) + tvSeconds(ru.Stime)
		// Linux reports KiB; see memory.go for why it is not taken as is.
		res.usage.MaxRSSBytes, res.usage.MaxRSSMethod = peakRSS(ru.Maxrss*1024, sampled, platform.SelfPeakRSS())
	}
	if ws, ok := state.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
		res.signal, res.signalNumber = ws.Signal().String(), int(ws.Signal())
		res.exitCode = -1
	} else {
		res.exitCode = state.ExitCode()
	}
}

var (
	devNullOnce sync.Once
	devNullFile *os.File
)

// devNull is the runs' standard input, opened once (os/exec would open it
// for every run).
func devNull() *os.File {
	devNullOnce.Do(func() {
		devNullFile, _ = os.Open(os.DevNull)
	})
	return devNullFile
}

var errNotExecutable = errors.New("not an executable file (chmod +x it in the repository, or run it through its interpreter)")

// lookCache remembers where bare program names were found in a PATH.
var lookCache sync.Map // prog + "\x00" + PATH → full path

func tvSeconds(tv syscall.Timeval) float64 {
	return float64(tv.Sec) + float64(tv.Usec)/1e6
}

// lookPath resolves the program like a shell would, but against the run's
// PATH and work folder instead of this process's.
func lookPath(prog, dir, path string) (string, error) {
	if strings.Contains(prog, "/") {
		full := prog
		if !filepath.IsAbs(prog) {
			full = filepath.Join(dir, prog)
		}
		if err := executable(full); err != nil {
			// Named as the contract names it, not by its work folder path.
			if errors.Is(err, errNotExecutable) {
				return "", fmt.Errorf("command %q: %w", prog, errNotExecutable)
			}
			return "", fmt.Errorf("command %q: %w", prog, fs.ErrNotExist)
		}
		return full, nil
	}
	key := prog + "\x00" + path
	if full, ok := lookCache.Load(key); ok && executable(full.(string)) == nil {
		return full.(string), nil
	}
	for _, d := range filepath.SplitList(path) {
		if d == "" || !filepath.IsAbs(d) {
			continue
		}
		full := filepath.Join(d, prog)
		if executable(full) == nil {
			lookCache.Store(key, full)
			return full, nil
		}
	}
	// The full PATH goes to the log (see runProcess), not into the
	// one-line error.
	return "", fmt.Errorf("command %q not found in PATH", prog)
}

func executable(p string) error {
	fi, err := os.Stat(p)
	if err != nil {
		return err
	}
	if fi.IsDir() || fi.Mode()&0o111 == 0 {
		return fmt.Errorf("%s: %w", p, errNotExecutable)
	}
	return nil
}

// ProcessStartTicks returns a process's start time in clock ticks since
// boot: with the PID it identifies a process, since a reused PID has a
// later start time.
func ProcessStartTicks(pid int) (uint64, error) {
	st, err := platform.ReadStat(pid)
	return st.StartTicks, err
}

// killEscaped ends the processes among pids that still carry this run's
// EXPSYNC_RUN_ID but are outside its process group (they called setsid or
// setpgid): the group kill missed them. The run ID in the environment
// tells a live descendant from an unrelated process that reused its PID.
func killEscaped(pids map[int]bool, pgid int, runID string) {
	mark := []byte("EXPSYNC_RUN_ID=" + runID + "\x00")
	for pid := range pids {
		if g, err := syscall.Getpgid(pid); err != nil || g == pgid {
			continue // gone, or killed with the group
		}
		env, err := platform.Environ(pid)
		if err != nil || !bytes.Contains(append(env, 0), mark) {
			continue
		}
		_ = syscall.Kill(pid, syscall.SIGKILL)
	}
}
