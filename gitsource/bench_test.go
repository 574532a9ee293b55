package gitsource

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// Benchmarks put expsync's gitsource and the git CLI side by side in one
// run against the same server (git daemon, a separate process) and report
// the ratio ours/git; ratios, not single times, are what to compare.
//
//	go test -run '^$' -bench . -benchtime 5x ./gitsource/
//
// They skip in -short. The 1,500-commit / 8,000-file repository is
// generated once per run with git fast-import (about 6 s); so is, for the
// shallow-fetch benchmark, one of the same shape with similar files (2 s).

var bigRepo struct {
	once sync.Once
	root string
	err  error
}

const (
	bigCommits = 1500
	bigFiles   = 8000
)

// benchServer serves the generated repository ("big") over git://.
func benchServer(b *testing.B) (url, root string) {
	b.Helper()
	skipShort(b)
	bigRepo.once.Do(func() {
		bigRepo.root, bigRepo.err = os.MkdirTemp("", "gitsource-bench")
		if bigRepo.err == nil {
			generateRepo(b, filepath.Join(bigRepo.root, "big.git"), bigCommits, bigFiles)
		}
	})
	if bigRepo.err != nil {
		b.Fatal(bigRepo.err)
	}
	return gitDaemon(b, bigRepo.root), bigRepo.root
}

var similarRepo sync.Once

// similarRepoName adds to benchServer's root, once, "similar.git": the same
// shape as "big" (1,500 commits, 8,000 files) with files that differ by one
// line, like source code, so that the server sends nearly every blob as a
// delta. "big"'s random files hardly delta, which hides how a client
// resolves deltas.
func similarRepoName(b *testing.B, root string) string {
	similarRepo.Do(func() { generateSimilarRepo(b, filepath.Join(root, "similar.git"), bigCommits, bigFiles) })
	return "similar.git"
}

func skipShort(b *testing.B) {
	if testing.Short() {
		b.Skip("benchmarks that generate repositories and start git daemon are skipped in -short")
	}
}

func gitSource(b *testing.B, url, cache string) *Source {
	src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, cache)
	if err != nil {
		b.Fatal(err)
	}
	return src
}

// childRun is what one run of a command cost.
type childRun struct {
	wall time.Duration
	// maxRSS is the peak resident memory of the command's largest single
	// process: GNU time's %M (the kernel's high-water mark from wait4,
	// which for a command that starts children is the largest of them).
	maxRSS int64
	// tree is the peak of the whole process tree's memory, sampled from
	// /proc (treeSampler); zero unless the run was sampled.
	tree           treeMemory
	samples        int
	sampleInterval time.Duration // mean time between samples
}

// treeSampleSleep is the sampler's pause between samples; a sample of a
// two-process tree itself takes about 150 µs, so samples come every
// ~300-500 µs.
const treeSampleSleep = 200 * time.Microsecond

// runChild runs a command and returns its wall time and peak RSS in bytes
// (childRun.maxRSS).
func runChild(b *testing.B, cmd *exec.Cmd, allowFail bool) (time.Duration, int64) {
	b.Helper()
	r := runMeasured(b, cmd, allowFail, false)
	return r.wall, r.maxRSS
}

// runMeasured runs a command under GNU time (%M) when /usr/bin/time is
// installed and, with sample set, samples its process tree's memory while
// it runs. A child started directly by Go inherits the parent's high-water
// RSS in its rusage (Linux keeps the pre-exec mm's peak, and Go starts
// children with vfork), so getrusage of our own child cannot go below our
// size: GNU time, a small C program, is the wrapper, and the tree sampler
// measures its descendants, not GNU time itself. Sampling costs CPU on a
// 2-core machine, so a sampled run's wall time is not a fair time.
func runMeasured(b *testing.B, cmd *exec.Cmd, allowFail, sample bool) childRun {
	b.Helper()
	if cmd.Env == nil {
		cmd.Env = gitEnv(os.TempDir())
	}
	rssFile := filepath.Join(b.TempDir(), "rss")
	timed, wrapped := cmd, false
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		timed = exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile}, cmd.Args...)...)
		timed.Env, timed.Dir = cmd.Env, cmd.Dir
		wrapped = true
	}
	var out bytes.Buffer
	timed.Stdout, timed.Stderr = &out, &out
	t0 := time.Now()
	if err := timed.Start(); err != nil {
		b.Fatalf("%v: %v", cmd.Args, err)
	}
	var sampler *treeSampler
	var stop atomic.Bool
	sampled := make(chan struct{})
	if sample {
		var err error
		if sampler, err = newTreeSampler(timed.Process.Pid, !wrapped); err != nil {
			b.Fatalf("sample %v: %v", cmd.Args, err)
		}
		go func() { sampler.run(treeSampleSleep, &stop); close(sampled) }()
	}
	err := timed.Wait()
	r := childRun{wall: time.Since(t0)}
	if sample {
		stop.Store(true)
		<-sampled
		r.tree, r.samples = sampler.peak, sampler.samples
		r.sampleInterval = r.wall / time.Duration(max(r.samples, 1))
	}
	if err != nil && !allowFail {
		b.Fatalf("%v: %v: %s", cmd.Args, err, out.Bytes())
	}
	if data, err := os.ReadFile(rssFile); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		if kb, err := strconv.ParseInt(lines[len(lines)-1], 10, 64); err == nil {
			r.maxRSS = kb * 1024
			return r
		}
	}
	ru := timed.ProcessState.SysUsage().(*syscall.Rusage)
	r.maxRSS = ru.Maxrss * 1024 // Linux reports KiB
	return r
}

func BenchmarkPollUnchangedVsLsRemote(b *testing.B) {
	url, _ := benchServer(b)
	src := gitSource(b, url+"/big.git", b.TempDir())
	ctx := context.Background()
	if _, err := src.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	before := src.Stats()
	var ours, theirs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		changes, err := src.Poll(ctx)
		ours += time.Since(t0)
		if err != nil || len(changes) != 0 {
			b.Fatalf("unchanged poll = %v, %v", changes, err)
		}
		d, _ := runChild(b, exec.Command("git", "ls-remote", url+"/big.git"), false)
		theirs += d
	}
	b.StopTimer()
	after := src.Stats()
	b.ReportMetric(float64(ours.Microseconds())/float64(b.N), "ours-µs/poll")
	b.ReportMetric(float64(theirs.Microseconds())/float64(b.N), "git-ls-remote-µs")
	b.ReportMetric(float64(ours)/float64(theirs), "ratio")
	b.ReportMetric(float64(after.Fetches-before.Fetches)/float64(b.N), "fetches/poll")
	b.ReportMetric(float64(after.Lists-before.Lists)/float64(b.N), "lists/poll")
}

var fetchChild struct {
	once sync.Once
	path string
	err  error
}

// buildFetchChild builds internal/fetchchild, a binary that only snapshots:
// measured as a process on its own, like git, without the test framework.
// It is built as expsync is (make build): static, without cgo.
func buildFetchChild(b *testing.B) string {
	fetchChild.once.Do(func() {
		dir, err := os.MkdirTemp("", "fetchchild")
		if err != nil {
			fetchChild.err = err
			return
		}
		fetchChild.path = filepath.Join(dir, "fetchchild")
		cmd := exec.Command("go", "build", "-o", fetchChild.path, "./internal/fetchchild")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			fetchChild.err = fmt.Errorf("go build ./internal/fetchchild: %v: %s", err, out)
		}
	})
	if fetchChild.err != nil {
		b.Fatal(fetchChild.err)
	}
	return fetchChild.path
}

// BenchmarkShallowFetchVsGitClone compares our snapshot, in a child binary
// of its own (internal/fetchchild, built static like expsync), with `git
// clone --depth 1` against the same git daemon: time and peak memory. The
// server's processes (git daemon, upload-pack, pack-objects) are not
// counted on either side.
//
// Each iteration runs both sides twice: once plain, for time, and once with
// the process tree sampled, for memory (sampling takes CPU from the
// measured processes on this 2-core machine). Metrics, per side and as
// ours/git ratios:
//
//   - ours-ms, git-ms, time-ratio: wall time of the plain runs.
//   - ours-maxrss-MiB, git-maxrss-MiB, maxrss-ratio: the peak resident
//     memory of the LARGEST SINGLE PROCESS (GNU time's %M, the kernel's
//     high-water mark; the largest over all runs). This was the only memory
//     figure before; it understates git, which is several processes.
//   - ours-tree-MiB, git-tree-MiB, tree-ratio: the peak, over the run, of
//     the memory the command's WHOLE PROCESS TREE holds at once (treeMemory,
//     sampled from /proc every sample-µs): anonymous memory summed over the
//     processes (Pss_Anon) plus file-backed memory counted once per
//     distinct file (the largest resident size of that file in any process
//     of the tree). ours-/git-tree-anon-MiB is the anonymous part at the peak.
//   - ours-idle-MiB: the child starting and exiting at once (%M).
//   - sample-µs: mean time between the sampler's samples; sampler-coverage:
//     our child's sampled peak over its %M in the same run (it is one
//     process, so the two should agree; below 0.85 the benchmark fails,
//     as the sampler missed the peak).
//
// tree-ratio is the fair reading of the issue's "peak memory at most 2x
// git's": `git clone` over git:// streams the pack into `git index-pack
// --stdin`, a second process running at the same time, then runs `git
// rev-list` to check connectivity (GIT_TRACE=1 shows them). The machine
// holds the memory of all of them at once, which %M, the largest one, does
// not show. Summing their RSS would overstate git instead: clone and
// index-pack map the same libraries (and here two copies of the git
// binary, /usr/bin/git and /usr/lib/git-core/git, which are distinct files
// and count twice, as they occupy memory twice). PSS would understate git:
// it divides shared pages with processes outside the measurement (git
// daemon's upload-pack maps git too).
//
// Measured 2026-11-28 on the 2-core CI machine (shared with other
// benchmarks), `go test -run '^$' -bench 'ShallowFetch|IncrementalSnapshot'
// -benchtime 3x -count 3 ./gitsource/`; ranges over the three runs:
//
//	case                          tree-ratio  maxrss-ratio  time-ratio  ours / git tree MiB
//	fetch                         1.42-1.52   1.95-2.02     0.72-0.81   13.8-14.3 / 9.3-9.7
//	fetch+read-all                1.79-1.88   2.18-2.31     0.06-0.11   17.7-18.2 / 9.7-9.9
//	similar-files/fetch           1.54-1.60   2.20-2.27     0.85-1.04   13.7-14.2 / 8.9
//	similar-files/fetch+read-all  0.68-0.74   0.73-0.81     0.24-0.27   18.5-20.4 / 27.3-27.5
//
// (IncrementalSnapshotVsGitFetch in the same run: 0.20-0.22.) The issue's
// "peak memory at most 2x git's" holds on the fair metric, tree-ratio, in
// every case; on the largest process alone (maxrss-ratio) it is at the
// limit for the fetch and over it (2.2-2.3x) for the others. git's anonymous
// memory is ~1.1 MiB (its memory is its binaries and mmapped packs); ours
// is the Go heap at about the runtime's 4 MiB minimum goal plus the
// runtime (~6 MiB anonymous in all), and ~7.6 MiB of file pages: nearly
// all of the static binary's 8 MB of text and read-only data is resident
// (it idles at ours-idle-MiB). Before this benchmark measured the whole
// tree, the child was dynamically linked (+1.2 MiB: libc, ld.so), read
// through a second storage (+0.5 MiB) and go-git's pack parser indexed the
// fetched pack: maxrss-ratio 2.4-2.6 on fetch, and on similar files 56 MiB
// against git's 6 (9x), now 13.7-14.2 (packindex.go).
func BenchmarkShallowFetchVsGitClone(b *testing.B) {
	url, root := benchServer(b)
	similar := similarRepoName(b, root)
	exe := buildFetchChild(b)
	// The child's baseline: the same binary starting and exiting at once.
	idle := runMeasured(b, exec.Command(exe, "idle"), false, false)
	bare := []string{"clone", "-q", "--bare", "--depth", "1", "--single-branch", "--no-tags"}
	checkout := []string{"clone", "-q", "--depth", "1", "--single-branch", "--no-tags"}
	for _, c := range []struct {
		name, repo, mode string
		gitArgs          []string
	}{
		// Fetch only: our snapshot (no work tree) vs a bare shallow clone.
		{"fetch", "big.git", "fetch", bare},
		// Fetch and read every file vs a shallow clone with checkout.
		{"fetch+read-all", "big.git", "read", checkout},
		// The same on a repository of similar files (nearly all deltas).
		{"similar-files/fetch", similar, "fetch", bare},
		{"similar-files/fetch+read-all", similar, "read", checkout},
	} {
		repoURL := url + "/" + c.repo
		b.Run(c.name, func(b *testing.B) {
			ourCmd := func() *exec.Cmd { return exec.Command(exe, repoURL, b.TempDir(), c.mode) }
			gitCmd := func() *exec.Cmd {
				args := append(append([]string{}, c.gitArgs...), repoURL, filepath.Join(b.TempDir(), "clone"))
				return exec.Command("git", args...)
			}
			var oursTime, gitTime, interval time.Duration
			var oursRSS, gitRSS int64
			var oursTree, gitTree treeMemory
			samples, coverage := 0, math.Inf(1)
			for i := 0; i < b.N; i++ {
				ours, git := runMeasured(b, ourCmd(), false, false), runMeasured(b, gitCmd(), false, false)
				oursTime += ours.wall
				gitTime += git.wall
				oursRSS, gitRSS = max(oursRSS, ours.maxRSS), max(gitRSS, git.maxRSS)

				ours, git = runMeasured(b, ourCmd(), false, true), runMeasured(b, gitCmd(), false, true)
				oursRSS, gitRSS = max(oursRSS, ours.maxRSS), max(gitRSS, git.maxRSS)
				if ours.tree.total() > oursTree.total() {
					oursTree = ours.tree
				}
				if git.tree.total() > gitTree.total() {
					gitTree = git.tree
				}
				coverage = min(coverage, float64(ours.tree.total())/float64(ours.maxRSS))
				samples += ours.samples + git.samples
				interval += ours.wall + git.wall
			}
			if coverage < 0.85 {
				b.Fatalf("the tree sampler saw %.0f%% of our child's peak RSS (one process: it should see ~100%%); "+
					"the machine is too busy to sample every %v", coverage*100, treeSampleSleep)
			}
			mib := func(n int64) float64 { return float64(n) / (1 << 20) }
			b.ReportMetric(float64(oursTime.Milliseconds())/float64(b.N), "ours-ms")
			b.ReportMetric(float64(gitTime.Milliseconds())/float64(b.N), "git-ms")
			b.ReportMetric(float64(oursTime)/float64(gitTime), "time-ratio")
			b.ReportMetric(mib(oursRSS), "ours-maxrss-MiB")
			b.ReportMetric(mib(gitRSS), "git-maxrss-MiB")
			b.ReportMetric(float64(oursRSS)/float64(gitRSS), "maxrss-ratio")
			b.ReportMetric(mib(oursTree.total()), "ours-tree-MiB")
			b.ReportMetric(mib(gitTree.total()), "git-tree-MiB")
			b.ReportMetric(float64(oursTree.total())/float64(gitTree.total()), "tree-ratio")
			b.ReportMetric(mib(oursTree.Anon), "ours-tree-anon-MiB")
			b.ReportMetric(mib(gitTree.Anon), "git-tree-anon-MiB")
			b.ReportMetric(mib(idle.maxRSS), "ours-idle-MiB")
			b.ReportMetric(float64(interval.Microseconds())/float64(max(samples, 1)), "sample-µs")
			b.ReportMetric(coverage, "sampler-coverage")
		})
	}
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			f := strings.Fields(line)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

func BenchmarkPoll1000UnchangedRepositories(b *testing.B) {
	skipShort(b)
	// 1,000 distinct repositories (symlinks to one small repository).
	reposRoot := b.TempDir()
	small := filepath.Join(reposRoot, "small.git")
	generateRepo(b, small, 3, 20)
	head := runGit(b, small, "rev-parse", "main")
	const n = 1000
	for i := 0; i < n; i++ {
		if err := os.Symlink(small, filepath.Join(reposRoot, fmt.Sprintf("r%04d.git", i))); err != nil {
			b.Fatal(err)
		}
	}
	url := gitDaemon(b, reposRoot)
	cache := b.TempDir()
	ctx := context.Background()
	for iter := 0; iter < b.N; iter++ {
		runtime.GC()
		debug.FreeOSMemory()
		rss0 := rssBytes()
		var ms0 runtime.MemStats
		runtime.ReadMemStats(&ms0)
		sources := make([]*Source, n)
		for i := range sources {
			sources[i] = gitSource(b, fmt.Sprintf("%s/r%04d.git", url, i), cache)
			sources[i].SetObserved(map[string]string{"refs/heads/main": head})
		}
		t0 := time.Now()
		var wg sync.WaitGroup
		sem := make(chan struct{}, 8)
		var errs sync.Map
		for i, s := range sources {
			wg.Add(1)
			sem <- struct{}{}
			go func(i int, s *Source) {
				defer wg.Done()
				defer func() { <-sem }()
				changes, err := s.Poll(ctx)
				if err != nil || len(changes) != 0 {
					errs.Store(i, fmt.Sprint(changes, err))
				}
			}(i, s)
		}
		wg.Wait()
		elapsed := time.Since(t0)
		errs.Range(func(k, v any) bool { b.Fatalf("repo %v: %v", k, v); return false })
		peakRSS := rssBytes()
		runtime.GC()
		var ms1 runtime.MemStats
		runtime.ReadMemStats(&ms1)
		var fetches int64
		for _, s := range sources {
			fetches += s.Stats().Fetches
		}
		b.ReportMetric(float64(peakRSS-rss0)/(1<<20), "extra-rss-MiB")
		b.ReportMetric(float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/(1<<20), "retained-heap-MiB")
		b.ReportMetric(float64(int64(ms1.HeapInuse)-int64(ms0.HeapInuse))/n, "retained-B/repo")
		b.ReportMetric(float64(elapsed.Milliseconds()), "ms/1000-polls")
		b.ReportMetric(float64(fetches), "fetches")
		runtime.KeepAlive(sources)
	}
}

func BenchmarkCommitBack1000FilesVsGitCLI(b *testing.B) {
	skipShort(b)
	root := b.TempDir()
	bare := filepath.Join(root, "cb.git")
	generateRepo(b, bare, 2, 100)
	url := gitDaemon(b, root) + "/cb.git"
	src := gitSource(b, url, b.TempDir())
	work := b.TempDir()
	runGit(b, work, "clone", "-q", url, "w")
	work = filepath.Join(work, "w")
	ctx := context.Background()
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		files := map[string][]byte{}
		for f := 0; f < 1000; f++ {
			files[fmt.Sprintf("results/ours-%d/run%04d/run.json", i, f)] = []byte(fmt.Sprintf(`{"run":%d,"iter":%d}`, f, i))
		}
		t0 := time.Now()
		res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Files: files, Message: "results", Author: bot}, nil)
		ours += time.Since(t0)
		if err != nil || !res.Pushed {
			b.Fatalf("commit back = %+v, %v", res, err)
		}
		// The git CLI: pull, write the same number of files, add, commit, push.
		t0 = time.Now()
		runGit(b, work, "pull", "-q", "--ff-only", "origin", "main")
		for f := 0; f < 1000; f++ {
			p := filepath.Join(work, "results", fmt.Sprintf("git-%d", i), fmt.Sprintf("run%04d", f))
			os.MkdirAll(p, 0o755)
			os.WriteFile(filepath.Join(p, "run.json"), []byte(fmt.Sprintf(`{"run":%d,"iter":%d}`, f, i)), 0o644)
		}
		runGit(b, work, "add", "-A")
		runGit(b, work, "commit", "-q", "-m", "results")
		runGit(b, work, "push", "-q", "origin", "main")
		theirs += time.Since(t0)
	}
	b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "ours-ms")
	b.ReportMetric(float64(theirs.Milliseconds())/float64(b.N), "git-ms")
	b.ReportMetric(float64(ours)/float64(theirs), "ratio")
}

// BenchmarkIncrementalSnapshotVsGitFetch: after one new commit, our next
// snapshot (fetch into the existing cache) vs `git fetch` in a shallow clone.
func BenchmarkIncrementalSnapshotVsGitFetch(b *testing.B) {
	_, root := benchServer(b)
	copyRoot := b.TempDir()
	if out, err := exec.Command("cp", "-r", filepath.Join(root, "big.git"), filepath.Join(copyRoot, "inc.git")).CombinedOutput(); err != nil {
		b.Fatalf("cp: %v: %s", err, out)
	}
	url := gitDaemon(b, copyRoot) + "/inc.git"
	src := gitSource(b, url, b.TempDir())
	ctx := context.Background()
	sn, err := src.Snapshot(ctx, "main", "")
	if err != nil {
		b.Fatal(err)
	}
	sn.Close()
	shallow := filepath.Join(b.TempDir(), "shallow")
	runGit(b, filepath.Dir(shallow), "clone", "-q", "--bare", "--depth", "1", "--single-branch", "--no-tags", url, shallow)
	writer := filepath.Join(b.TempDir(), "w")
	runGit(b, filepath.Dir(writer), "clone", "-q", "--depth", "1", url, writer)
	var ours, theirs time.Duration
	for i := 0; i < b.N; i++ {
		os.WriteFile(filepath.Join(writer, "dir000", "file0000.txt"), []byte(fmt.Sprintf("change %d\n", i)), 0o644)
		runGit(b, writer, "commit", "-qam", fmt.Sprintf("change %d", i))
		runGit(b, writer, "push", "-q", "origin", "main")
		t0 := time.Now()
		sn, err := src.Snapshot(ctx, "main", "")
		ours += time.Since(t0)
		if err != nil {
			b.Fatal(err)
		}
		sn.Close()
		d, _ := runChild(b, exec.Command("git", "-C", shallow, "fetch", "-q", "origin", "+main:main"), false)
		theirs += d
	}
	b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "ours-ms")
	b.ReportMetric(float64(theirs.Milliseconds())/float64(b.N), "git-fetch-ms")
	b.ReportMetric(float64(ours)/float64(theirs), "ratio")
}
