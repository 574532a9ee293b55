package runner

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"

	"github.com/expsync/expsync/internal/platform"
)

// A run's command does not start as expsync's child but as the child of a
// small reaper: expsync's own binary, started again with reaperArg. The
// reaper is a child subreaper (PR_SET_CHILD_SUBREAPER): every process of
// the run whose parent dies — one that called setsid, cleared its
// environment and double-forked to outlive the run — is re-parented to the
// reaper rather than to init. When the command exits, the reaper kills
// every process left below it, generation by generation, reaps them and
// only then exits with the command's status. So when expsync sees the run
// end, no process of it is left to write to a file it shares with the
// store (the hard-linked context files the runner checks next), and CPU
// time of the reaped processes counts in the run's usage.
//
// expsync signals the reaper, never the command's group directly: SIGTERM
// is passed to the command's process group, SIGUSR1 kills every process
// of the run. If expsync dies, the reaper gets SIGUSR1 too (its
// Pdeathsig) and so ends every process of the run, also those that left
// the command's session, before it exits (with SIGKILL they went to init
// and lived on). What the reaper cannot end — it was killed itself — the
// executor's journal recovery ends by EXPSYNC_RUN_ID.
const reaperArg = "__expsync_run_reaper__"

func init() {
	// Any binary that links the runner (expsync, a test binary) can be
	// the reaper: it is started again with reaperArg.
	if len(os.Args) > 2 && os.Args[1] == reaperArg {
		os.Exit(reaperMain(os.Args[2], os.Args[3:]))
	}
}

var (
	reaperOnce sync.Once
	reaperExe  string
)

// reaperPath is the binary to start as a run's reaper, "" when this
// process cannot find its own executable (the command then starts
// directly, without the reaper: see runProcess).
func reaperPath() string {
	reaperOnce.Do(func() {
		if exe, err := os.Executable(); err == nil {
			reaperExe = exe
		}
	})
	return reaperExe
}

// reaperMain runs prog with argv (argv[0] included) as the reaper.
func reaperMain(prog string, argv []string) int {
	_ = platform.BecomeSubreaper()
	signals := make(chan os.Signal, 4)
	// Caught, not ignored: the command gets the default dispositions.
	signal.Notify(signals, syscall.SIGTERM, syscall.SIGINT, syscall.SIGUSR1, syscall.SIGHUP)
	cmd := &exec.Cmd{Path: prog, Args: argv, Stdin: os.Stdin, Stdout: os.Stdout, Stderr: os.Stderr,
		SysProcAttr: &syscall.SysProcAttr{Setpgid: true}}
	platform.DieWithParent(cmd.SysProcAttr, syscall.SIGKILL)
	if err := cmd.Start(); err != nil {
		os.Stderr.WriteString("expsync: start " + argv[0] + ": " + err.Error() + "\n")
		if errors.Is(err, os.ErrPermission) || errors.Is(err, syscall.ENOEXEC) {
			return 126
		}
		return 127
	}
	pgid := cmd.Process.Pid
	done := make(chan struct{})
	go func() {
		for {
			select {
			case <-done:
				return
			case s := <-signals:
				if s == syscall.SIGUSR1 {
					killDescendants()
					continue
				}
				_ = syscall.Kill(-pgid, s.(syscall.Signal))
			}
		}
	}()
	_ = cmd.Wait()
	close(done)
	// The command is gone: nothing of the run outlives it.
	killDescendants()
	ws, _ := cmd.ProcessState.Sys().(syscall.WaitStatus)
	if ws.Signaled() {
		sig := ws.Signal()
		signal.Reset(sig)
		_ = syscall.Kill(os.Getpid(), sig)
		select {} // the signal ends this process
	}
	return ws.ExitStatus()
}

// killDescendants kills every process below this one and reaps it. Killing
// a process re-parents its children to this subreaper, so it goes round
// until no child is left: each round kills one generation, and a killed
// process forks no more.
func killDescendants() {
	self := os.Getpid()
	for round := 0; round < 10_000; round++ {
		kids := childrenOf(self)
		if len(kids) == 0 {
			return
		}
		for _, pid := range kids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		for _, pid := range kids {
			var ws syscall.WaitStatus
			_, _ = syscall.Wait4(pid, &ws, 0, nil)
		}
	}
}

// childrenOf lists the children of pid (from /proc/<pid>/task/*/children,
// or else every process's parent in /proc/<n>/stat).
func childrenOf(pid int) []int {
	var out []int
	tasks, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/task")
	if err == nil {
		seen := map[int]bool{}
		ok := false
		for _, t := range tasks {
			data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/task/" + t.Name() + "/children")
			if err != nil {
				continue
			}
			ok = true
			for _, f := range strings.Fields(string(data)) {
				if n, err := strconv.Atoi(f); err == nil && !seen[n] {
					seen[n] = true
					out = append(out, n)
				}
			}
		}
		if ok {
			return out
		}
	}
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if ppid, ok := parentPID(n); ok && ppid == pid {
			out = append(out, n)
		}
	}
	return out
}

// parentPID reads a process's parent from /proc/<pid>/stat.
func parentPID(pid int) (int, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, false
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 2 {
		return 0, false
	}
	ppid, err := strconv.Atoi(f[1])
	return ppid, err == nil
}
