package runner

import (
	"errors"
	"os"
	"os/exec"
	"os/signal"
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

// childrenOf lists the children of pid (as the kernel lists them, or
// else every process whose parent is pid).
func childrenOf(pid int) []int {
	if out, ok := platform.Children(pid); ok {
		return out
	}
	var out []int
	pids, _ := platform.PIDs()
	for _, n := range pids {
		if st, err := platform.ReadStat(n); err == nil && st.PPID == pid {
			out = append(out, n)
		}
	}
	return out
}
