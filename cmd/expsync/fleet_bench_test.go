package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/internal/fleetbench"
)

// BenchmarkServeFleet measures `expsync serve` (the real binary) watching a
// fleet of unchanged repositories — 100, 1,000 and 10,000 by default
// (EXPSYNC_BENCH_FLEET=100,1000,10000) — served by git's own smart HTTP
// server (`git http-backend`) on loopback: the first pass (every
// repository fetched once, its runs found done), then steady polling, where
// each repository must cost one ref listing per interval and no fetch
// (counted at the server). From /proc it reads the process's resident
// memory (peak: VmHWM; steady: median VmRSS over the measured cycles) and
// CPU time per poll cycle, and runs `git ls-remote` on a sample of the same
// repositories as the CPU peer. It prints a table per binary and count,
// the growth per repository between counts and the ratios.
//
// EXPSYNC_BENCH_FLEET_BASELINE=PATH measures another expsync binary (an
// older build) side by side, count by count in the same run: the
// before/after table. EXPSYNC_BENCH_FLEET_INTERVAL (default 15s up to
// 1,000 repositories, 60s above) and EXPSYNC_BENCH_FLEET_CYCLES (default 2)
// set the polling. The largest count is also measured after a restart on
// the caches the first run left (startup on 10,000 caches).
//
// make bench-fleet runs it (after BenchmarkControllerFleet); about 10 minutes per
// binary and count.
func BenchmarkServeFleet(b *testing.B) {
	counts := fleetbench.Counts(b)
	cycles := fleetbench.Cycles()
	binaries := []fleetBinary{{"this", expsyncBinary(b)}}
	if base := os.Getenv("EXPSYNC_BENCH_FLEET_BASELINE"); base != "" {
		binaries = append([]fleetBinary{{"baseline", base}}, binaries...)
	}
	b.Setenv("EXPSYNC_PASSWORD", "")
	key, _ := labKeyPair(b)

	template := fleetTemplate(b, binaries[len(binaries)-1].path, key)
	root := b.TempDir()
	start := time.Now()
	fleetbench.CopyFleet(b, template, root, counts[len(counts)-1])
	fmt.Printf("fleet: %d repositories made in %s\n", counts[len(counts)-1], time.Since(start).Round(time.Second))
	srv := fleetbench.NewFleetServer(b, root, 32)
	srv.ReplayListings = true

	var rows []fleetRow
	b.ResetTimer()
	for _, n := range counts {
		interval := 15 * time.Second
		if n > 1000 {
			interval = time.Minute
		}
		if v, err := time.ParseDuration(os.Getenv("EXPSYNC_BENCH_FLEET_INTERVAL")); err == nil && v > 0 {
			interval = v
		}
		peer := srv.LsRemoteCPU(b, min(n, 200))
		for _, bin := range binaries {
			work := b.TempDir()
			row := measureFleet(b, bin, srv, n, interval, cycles, key, work)
			row.peerPerList = peer
			rows = append(rows, row)
			printFleetRow(row)
			if n == counts[len(counts)-1] {
				again := measureFleet(b, bin, srv, n, interval, cycles, key, work)
				again.label += " restart"
				again.peerPerList = peer
				rows = append(rows, again)
				printFleetRow(again)
			}
		}
	}
	b.StopTimer()
	printFleetTable(rows, binaries)
	for _, r := range rows {
		if r.steadyFetches != 0 {
			b.Errorf("%s, %d repositories: %d fetches while nothing changed (want 0)", r.label, r.n, r.steadyFetches)
		}
		if r.listsPerRepoCycle < 0.9 || r.listsPerRepoCycle > 1.1 {
			b.Errorf("%s, %d repositories: %.2f ref listings per repository per cycle (want 1)", r.label, r.n, r.listsPerRepoCycle)
		}
	}
}

type fleetBinary struct{ label, path string }

// fleetRow is one binary serving n repositories.
type fleetRow struct {
	label         string
	n             int
	interval      time.Duration
	firstPass     time.Duration
	firstPassPeak int64 // bytes: VmHWM when the first pass ended
	peak          int64 // VmHWM at the end
	steadyRSS     int64 // median VmRSS over the measured cycles
	cpuPerCycle   time.Duration
	// listsPerRepoCycle: ref listings per repository per interval (1).
	listsPerRepoCycle float64
	firstFetches      int64
	steadyFetches     int64
	problems          []string // log lines that report errors
	peerPerList       time.Duration
}

// fleetTemplate is a packed bare repository whose experiment's runs are
// done: one sweep of 4 runs executed and committed back by `expsync run`.
func fleetTemplate(b testing.TB, bin, key string) string {
	lab := newLab(b)
	lab.Commit("fleet experiment", trivialSweep(4))
	work := b.TempDir()
	cmd := exec.Command(bin, "run", lab.URL(), "--allow-http", "--key", key, "--store", filepath.Join(work, "store"),
		"--state", filepath.Join(work, "state"), "--progress", "none")
	cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
	if out, err := cmd.CombinedOutput(); err != nil || !strings.Contains(string(out), "4 executed") {
		b.Fatalf("expsync run: %v\n%s", err, out)
	}
	dir := filepath.Join(b.TempDir(), "template.git")
	lab.Git(filepath.Dir(dir), "clone", "-q", "--bare", "--no-local", filepath.Join(lab.Srv.Root(), "lab.git"), dir)
	lab.Git(dir, "repack", "-a", "-d", "-q")
	lab.Git(dir, "pack-refs", "--all")
	return dir
}

// measureFleet runs `serve` on the first n repositories until its first
// pass is done, then measures cycles polls.
func measureFleet(b *testing.B, bin fleetBinary, srv *fleetbench.FleetServer, n int, interval time.Duration, cycles int, key, work string) fleetRow {
	b.Helper()
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "store: %s\nstate: %s\nkey: %s\ninterval: %s\nbatchInterval: 1s\nconcurrency: 2\nrepositories:\n",
		filepath.Join(work, "store"), filepath.Join(work, "state"), key, interval)
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "  - {url: %s, allowHTTP: true, refs: [{pattern: main, trusted: true}]}\n", srv.URL(fleetbench.FleetRepoName(i)))
	}
	file := filepath.Join(work, "serve.yaml")
	if err := os.WriteFile(file, []byte(cfg.String()), 0o644); err != nil {
		b.Fatal(err)
	}
	row := fleetRow{label: bin.label, n: n, interval: interval}
	posts0 := srv.Posts()
	cmd := exec.Command(bin.path, "serve", "--config", file)
	cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	pid := cmd.Process.Pid
	var mu sync.Mutex
	done := 0
	lines := make(chan struct{}, 1)
	var exited = make(chan struct{})
	go func() {
		defer close(exited)
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			switch {
			case strings.Contains(line, ": nothing to do ("):
				done++
			case strings.Contains(line, "serving "), strings.Contains(line, "stopped"):
			default:
				if len(row.problems) < 1000 {
					row.problems = append(row.problems, line)
				}
			}
			mu.Unlock()
			select {
			case lines <- struct{}{}:
			default:
			}
		}
	}()
	stop := func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(2 * time.Minute):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = cmd.Wait()
	}
	sampler := fleetbench.NewRSSSampler(pid)
	deadline := time.Now().Add(max(20*time.Minute, time.Duration(n)*30*time.Millisecond))
	for {
		mu.Lock()
		d := done
		mu.Unlock()
		if d >= n {
			break
		}
		if time.Now().After(deadline) {
			stop()
			sampler.Stop()
			b.Fatalf("%s: first pass of %d repositories not done after %s (%d done); log:\n%s", bin.label, n, time.Since(start), d, strings.Join(row.problems, "\n"))
		}
		select {
		case <-lines:
		case <-exited:
			sampler.Stop()
			b.Fatalf("%s: serve exited during the first pass:\n%s", bin.label, strings.Join(row.problems, "\n"))
		case <-time.After(time.Second):
		}
	}
	row.firstPass = time.Since(start)
	row.firstPassPeak = fleetbench.StatusKiB(pid, "VmHWM") << 10
	row.firstFetches = srv.Posts() - posts0

	// One interval to settle, then the measured cycles.
	time.Sleep(interval)
	cpu0, gets0, posts1 := fleetbench.CPU(pid), srv.Gets(), srv.Posts()
	t0 := time.Now()
	time.Sleep(time.Duration(cycles) * interval)
	cpu1, gets1, posts2 := fleetbench.CPU(pid), srv.Gets(), srv.Posts()
	row.steadyRSS = sampler.MedianSince(t0)
	row.peak = fleetbench.StatusKiB(pid, "VmHWM") << 10
	sampler.Stop()
	stop()
	row.cpuPerCycle = (cpu1 - cpu0) / time.Duration(cycles)
	row.steadyFetches = posts2 - posts1
	row.listsPerRepoCycle = float64((gets1-gets0)-(posts2-posts1)) / float64(n) / float64(cycles)
	mu.Lock()
	defer mu.Unlock()
	if len(row.problems) > 0 {
		fmt.Printf("%s, %d repositories: %d log lines besides the expected, first ones:\n  %s\n", bin.label, n, len(row.problems),
			strings.Join(row.problems[:min(5, len(row.problems))], "\n  "))
	}
	return row
}

func printFleetRow(r fleetRow) {
	fmt.Printf("%-16s %6d repos: first pass %6.1fs peak %6.1f MiB, steady %6.1f MiB, %7.1f ms CPU per cycle (%.3f core at 1/min), %.2f lists/repo/cycle, fetches %d then %d\n",
		r.label, r.n, r.firstPass.Seconds(), fleetbench.MiB(r.peak), fleetbench.MiB(r.steadyRSS), float64(r.cpuPerCycle.Microseconds())/1000,
		r.cpuPerCycle.Seconds()/60, r.listsPerRepoCycle, r.firstFetches, r.steadyFetches)
}

// printFleetTable prints every row, then per binary the growth per
// repository between counts, and the ratios to the git CLI and between
// binaries.
func printFleetTable(rows []fleetRow, bins []fleetBinary) {
	fmt.Printf("\nexpsync serve, unchanged repositories on git http-backend (loopback); CPU peer: git ls-remote of one repository\n")
	fmt.Printf("%-18s %7s %10s %9s %11s %11s %12s %11s %13s %14s %9s\n", "binary", "repos", "first pass", "peak MiB", "steady MiB",
		"KiB/repo", "CPU/cycle", "core@1/min", "µs/repo-poll", "git ls-remote", "ratio")
	for _, r := range rows {
		perPoll := r.cpuPerCycle / time.Duration(r.n)
		fmt.Printf("%-18s %7d %9.1fs %9.1f %11.1f %11.1f %10.1fms %11.4f %13.0f %12.0fµs %9.3f\n", r.label, r.n, r.firstPass.Seconds(),
			fleetbench.MiB(r.peak), fleetbench.MiB(r.steadyRSS), float64(r.steadyRSS)/1024/float64(r.n), float64(r.cpuPerCycle.Microseconds())/1000,
			r.cpuPerCycle.Seconds()/60, float64(perPoll.Nanoseconds())/1000, float64(r.peerPerList.Nanoseconds())/1000,
			float64(perPoll)/float64(r.peerPerList))
	}
	fmt.Printf("\ngrowth per added repository (slope between counts)\n")
	for _, bin := range bins {
		var prev *fleetRow
		for i := range rows {
			r := &rows[i]
			if r.label != bin.label {
				continue
			}
			if prev != nil {
				dn := float64(r.n - prev.n)
				fmt.Printf("%-18s %6d→%-6d steady %+7.1f KiB/repo, peak %+7.1f KiB/repo, CPU %+7.1f µs/repo per cycle\n", bin.label, prev.n, r.n,
					float64(r.steadyRSS-prev.steadyRSS)/1024/dn, float64(r.peak-prev.peak)/1024/dn,
					float64((r.cpuPerCycle-prev.cpuPerCycle).Nanoseconds())/1000/dn)
			}
			prev = r
		}
	}
	if len(bins) == 2 {
		fmt.Printf("\n%s / %s\n", bins[1].label, bins[0].label)
		for _, a := range rows {
			if a.label != bins[0].label && a.label != bins[0].label+" restart" {
				continue
			}
			for _, c := range rows {
				if c.n == a.n && strings.TrimPrefix(c.label, bins[1].label) == strings.TrimPrefix(a.label, bins[0].label) {
					fmt.Printf("%-18s %7d peak %.2f, steady %.2f, CPU %.2f, first pass %.2f\n", c.label, c.n, float64(c.peak)/float64(a.peak),
						float64(c.steadyRSS)/float64(a.steadyRSS), float64(c.cpuPerCycle)/float64(max(a.cpuPerCycle, 1)),
						c.firstPass.Seconds()/a.firstPass.Seconds())
				}
			}
		}
	}
}
