package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

// trivialSweep is one experiment of n trivial runs: each writes its
// parameter to an output file.
func trivialSweep(n int) map[string]string {
	xs := make([]string, n)
	for i := range xs {
		xs[i] = strconv.Itoa(i + 1)
	}
	return map[string]string{
		"experiments/trivial.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: trivial
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out && echo $0 > out/v.txt", "{{params.i}}"]
  context: code/trivial
  sweep:
    matrix:
      i: [` + strings.Join(xs, ", ") + `]
  outputs: [out/v.txt]
  resources: {cpu: 100m}
`,
		"code/trivial/README.md": "A trivial sweep for the end-to-end benchmark.\n",
	}
}

// BenchmarkSweepEndToEnd runs `expsync run` (the real binary, against a real
// Git server on loopback, with its default admission: each run requests
// 100m CPU) over a sweep of 1,000 trivial runs — plan, run, hash, store,
// sign, commit, push — and, side by side in the same iteration,
// `xargs -P <cores>` running the same commands bare (before and after
// expsync, averaged, so drifting load weighs on both sides). It reports
// both throughputs, their ratio (target: at least 0.5) and the peak
// resident memory of `expsync run`. EXPSYNC_BENCH_RUNS changes the sweep
// size.
func BenchmarkSweepEndToEnd(b *testing.B) {
	n := 1000
	if v, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_RUNS")); err == nil && v > 0 {
		n = v
	}
	bin := expsyncBinary(b)
	b.Setenv("EXPSYNC_PASSWORD", "")
	key, _ := labKeyPair(b)
	cores := runtime.NumCPU()
	var ours, bare time.Duration
	// CPU time (user+system, the commands run included): steadier than
	// wall time on a shared machine, whose file system stalls vary a lot.
	var oursCPU, bareCPU time.Duration
	var peakRSS int64
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		lab := newLab(b)
		files := trivialSweep(n)
		lab.Commit("trivial sweep", files)
		work := b.TempDir()
		b.StartTimer()

		// xargs -P <cores>, bare: before and after expsync, so load that
		// drifts during the iteration weighs on both sides alike.
		xargsOnce := func(name string) {
			bareDir := filepath.Join(work, name)
			start := time.Now()
			xargs := exec.Command("sh", "-c", fmt.Sprintf(`seq %d | xargs -P %d -I{} sh -c 'mkdir -p %s/{}/out && echo {} > %s/{}/out/v.txt'`, n, cores, bareDir, bareDir))
			if out, err := xargs.CombinedOutput(); err != nil {
				b.Fatalf("xargs: %v\n%s", err, out)
			}
			bare += time.Since(start) / 2
			bareCPU += (xargs.ProcessState.UserTime() + xargs.ProcessState.SystemTime()) / 2
		}
		xargsOnce("bare-before")

		// expsync run, end to end.
		cmd := exec.Command(bin, "run", lab.URL(), "--allow-http", "--key", key, "--store", filepath.Join(work, "store"),
			"--state", filepath.Join(work, "state"), "--progress", "none")
		cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
		start := time.Now()
		out, err := cmd.CombinedOutput()
		ours += time.Since(start)
		if cmd.ProcessState != nil {
			oursCPU += cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		}
		if err != nil || !strings.Contains(string(out), fmt.Sprintf("%d executed", n)) {
			b.Fatalf("expsync run: %v\n%s", err, out)
		}
		if ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage); ok && ru.Maxrss*1024 > peakRSS {
			peakRSS = ru.Maxrss * 1024 // Linux reports KiB
		}
		xargsOnce("bare-after")
	}
	b.StopTimer()
	runs := float64(n * b.N)
	b.ReportMetric(runs/ours.Seconds(), "expsync-runs/s")
	b.ReportMetric(runs/bare.Seconds(), "xargs-runs/s")
	b.ReportMetric(bare.Seconds()/ours.Seconds(), "expsync/xargs")
	b.ReportMetric(float64(peakRSS)/(1<<20), "peak-RSS-MiB")
	b.ReportMetric(oursCPU.Seconds()*1000/runs, "expsync-cpu-ms/run")
	b.ReportMetric(bareCPU.Seconds()*1000/runs, "xargs-cpu-ms/run")
}

// BenchmarkCommitLargeRun measures the peak resident memory of `expsync
// run` (the real binary, a real Git server on loopback) for one run whose
// outputs are many small files — EXPSYNC_BENCH_FILES, default 10,000, the
// limit (contract.MaxOutputFiles): hash, store, build run.json and the
// statement, sign, commit and push them — and, side by side, of the git CLI
// committing and pushing the same files from a clone (the largest of `git
// add`, `git commit` and `git push`). A count above the limit shows what a
// refused run costs: it stops hashing at the limit.
func BenchmarkCommitLargeRun(b *testing.B) {
	n := 10_000
	if v, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_FILES")); err == nil && v > 0 {
		n = v
	}
	bin := expsyncBinary(b)
	key, _ := labKeyPair(b)
	var ourRSS, gitRSS int64
	maxRSS := func(ps *os.ProcessState) int64 {
		if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
			return ru.Maxrss * 1024 // Linux reports KiB
		}
		return 0
	}
	script := fmt.Sprintf(`mkdir -p out; cd out; i=0; while [ $i -lt %d ]; do echo "$i" > "f$i.txt"; i=$((i+1)); done`, n)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		lab := newLab(b)
		lab.Commit("large run", map[string]string{"experiments/many.yaml": experimentYAML("many", script, "  outputs: [out/]\n")})
		work := b.TempDir()
		b.StartTimer()

		cmd := exec.Command(bin, "run", lab.URL(), "--allow-http", "--key", key, "--store", filepath.Join(work, "store"),
			"--state", filepath.Join(work, "state"), "--progress", "none")
		cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
		if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "1 executed") {
			b.Fatalf("expsync run: %v\n%s", err, out)
		}
		ourRSS = max(ourRSS, maxRSS(cmd.ProcessState))

		// The peer: the same files committed and pushed by the git CLI.
		clone := lab.Clone()
		sh := exec.Command("sh", "-c", script)
		sh.Dir = clone
		if out, err := sh.CombinedOutput(); err != nil {
			b.Fatalf("%v\n%s", err, out)
		}
		for _, args := range [][]string{{"add", "-A"}, {"commit", "-q", "-m", "many"}, {"push", "-q", "origin", "HEAD:peer"}} {
			// No background gc: it would still write when the clone is removed.
			g := exec.Command("git", append([]string{"-c", "gc.auto=0", "-c", "maintenance.auto=false"}, args...)...)
			g.Dir = clone
			g.Env = append(os.Environ(), "GIT_AUTHOR_NAME=p", "GIT_AUTHOR_EMAIL=p@x", "GIT_COMMITTER_NAME=p", "GIT_COMMITTER_EMAIL=p@x")
			if out, err := g.CombinedOutput(); err != nil {
				b.Fatalf("git %v: %v\n%s", args, err, out)
			}
			gitRSS = max(gitRSS, maxRSS(g.ProcessState))
		}
	}
	b.StopTimer()
	b.ReportMetric(float64(n), "files")
	b.ReportMetric(float64(ourRSS)/(1<<20), "expsync-peak-MiB")
	b.ReportMetric(float64(gitRSS)/(1<<20), "git-peak-MiB")
	b.ReportMetric(float64(ourRSS)/float64(max(gitRSS, 1)), "expsync/git")
}
