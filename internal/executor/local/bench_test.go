package local

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// BenchmarkExecutor1000VsXargs runs 1,000 trivial runs (each writes one
// output file) through the executor — small context materialised, log
// captured, output hashed into the store, result cached, journal kept — and
// the same 1,000 commands bare with `xargs -P <cores>`, and reports both
// throughputs and their ratio (executor/xargs; the goal is >= 0.5).
//
//	go test -run '^$' -bench Executor1000 -benchtime 1x ./executor/local
//
// Two sub-benchmarks: "disk" in $TMPDIR, and "tmpfs" in /dev/shm (both
// sides in the same place), since on a busy machine creating a file on
// disk can cost more CPU than the rest of a trivial run.
func BenchmarkExecutor1000VsXargs(b *testing.B) {
	b.Run("disk", func(b *testing.B) { benchExecutorVsXargs(b, "") })
	b.Run("tmpfs", func(b *testing.B) {
		if fi, err := os.Stat("/dev/shm"); err != nil || !fi.IsDir() {
			b.Skip("no /dev/shm on this machine")
		}
		benchExecutorVsXargs(b, "/dev/shm")
	})
}

func tempDir(b *testing.B, parent string) string {
	if parent == "" {
		return b.TempDir()
	}
	d, err := os.MkdirTemp(parent, "expsync-bench-")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func benchExecutorVsXargs(b *testing.B, parent string) {
	const runs = 1000
	cores := runtime.NumCPU()
	script := `echo "$0" > out.txt`
	var xargsTime, execTime, xargsCPU, execCPU time.Duration
	for i := 0; i < b.N; i++ {
		// Bare: xargs -P cores, each command in its own folder like a run.
		dir := tempDir(b, parent)
		var list strings.Builder
		for n := range runs {
			d := filepath.Join(dir, fmt.Sprint(n))
			os.Mkdir(d, 0o755)
			fmt.Fprintln(&list, d)
		}
		xargs := exec.Command("xargs", "-P", fmt.Sprint(cores), "-I{}", "sh", "-c", `cd "$0" && `+script, "{}")
		xargs.Stdin = strings.NewReader(list.String())
		cpu0 := cpuTime()
		t0 := time.Now()
		if out, err := xargs.CombinedOutput(); err != nil {
			b.Fatalf("xargs: %v\n%s", err, out)
		}
		xargsTime += time.Since(t0)
		xargsCPU += cpuTime() - cpu0

		cpu0 = cpuTime()
		execTime += runExecutor(b, tempDir(b, parent), runs, script)
		execCPU += cpuTime() - cpu0
	}
	xr := float64(runs*b.N) / xargsTime.Seconds()
	er := float64(runs*b.N) / execTime.Seconds()
	b.ReportMetric(xr, "xargs-runs/s")
	b.ReportMetric(er, "executor-runs/s")
	b.ReportMetric(er/xr, "executor/xargs")
	// CPU per run (this process and every child, user+system) is what
	// bounds throughput on an idle machine; wall ratios swing with the load
	// other processes put on a shared machine.
	b.ReportMetric(ms(xargsCPU)/float64(runs*b.N), "xargs-cpu-ms/run")
	b.ReportMetric(ms(execCPU)/float64(runs*b.N), "executor-cpu-ms/run")
	b.ReportMetric(float64(xargsCPU)/float64(execCPU), "cpu-executor/xargs")
	b.ReportMetric(0, "ns/op")
}

// cpuTime is the user+system time of this process and its waited-for
// children so far.
func cpuTime() time.Duration {
	var self, children syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &self)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &children)
	tv := func(t syscall.Timeval) time.Duration {
		return time.Duration(t.Sec)*time.Second + time.Duration(t.Usec)*time.Microsecond
	}
	return tv(self.Utime) + tv(self.Stime) + tv(children.Utime) + tv(children.Stime)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

func runExecutor(b *testing.B, root string, runs int, script string) time.Duration {
	b.Helper()
	st, err := store.OpenLocal(filepath.Join(root, "store"))
	if err != nil {
		b.Fatal(err)
	}
	m := tree.MemoryOf(map[string]string{"run.py": "print(1)\n", "experiment.yaml": "kind: Experiment\n", "README.md": "# exp\n"})
	ctxTree, err := store.ExportTree(context.Background(), st, m, "")
	if err != nil {
		b.Fatal(err)
	}
	ex, err := New(Options{Store: st, StateDir: filepath.Join(root, "state"), MemoryBytes: 1 << 30,
		Runner: runner.Options{WorkRoot: filepath.Join(root, "work")}})
	if err != nil {
		b.Fatal(err)
	}
	defer ex.Shutdown(context.Background())
	contracts := make([]contract.Contract, runs)
	for n := range contracts {
		contracts[n] = contract.Contract{Version: contract.Version, RunID: randomRunID(), Image: contract.HostImage,
			Command: []string{"sh", "-c", script, fmt.Sprint(n)}, Context: contract.Context{Tree: string(ctxTree)},
			Outputs: []string{"out.txt"}}
	}
	t0 := time.Now()
	jobs := make([]*Job, runs)
	for n, c := range contracts {
		if jobs[n], err = ex.Submit(c, nil); err != nil {
			b.Fatal(err)
		}
	}
	for _, j := range jobs {
		res, err := j.Result()
		if err != nil || res.Status != contract.Succeeded {
			b.Fatalf("run: %v %+v", err, res)
		}
	}
	d := time.Since(t0)
	runner.WaitCleanup()
	return d
}
