package gitsource

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
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
// generated once per run with git fast-import (about 6 s).

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

// runChild runs a command and returns its wall time and peak RSS in bytes.
// The peak comes from /usr/bin/time (GNU time's %M) when it is installed:
// a child started directly by Go inherits the parent's high-water RSS in
// its rusage (Linux keeps the pre-exec mm's peak, and Go starts children
// with vfork), so getrusage of our own child cannot go below our size.
func runChild(b *testing.B, cmd *exec.Cmd, allowFail bool) (time.Duration, int64) {
	b.Helper()
	if cmd.Env == nil {
		cmd.Env = gitEnv(os.TempDir())
	}
	rssFile := filepath.Join(b.TempDir(), "rss")
	timed := cmd
	if _, err := os.Stat("/usr/bin/time"); err == nil {
		timed = exec.Command("/usr/bin/time", append([]string{"-f", "%M", "-o", rssFile}, cmd.Args...)...)
		timed.Env, timed.Dir = cmd.Env, cmd.Dir
	}
	t0 := time.Now()
	out, err := timed.CombinedOutput()
	d := time.Since(t0)
	if err != nil && !allowFail {
		b.Fatalf("%v: %v: %s", cmd.Args, err, out)
	}
	if data, err := os.ReadFile(rssFile); err == nil {
		lines := strings.Split(strings.TrimSpace(string(data)), "\n")
		kb, err := strconv.ParseInt(lines[len(lines)-1], 10, 64)
		if err == nil {
			return d, kb * 1024
		}
	}
	ru := timed.ProcessState.SysUsage().(*syscall.Rusage)
	return d, ru.Maxrss * 1024 // Linux reports KiB
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
func buildFetchChild(b *testing.B) string {
	fetchChild.once.Do(func() {
		dir, err := os.MkdirTemp("", "fetchchild")
		if err != nil {
			fetchChild.err = err
			return
		}
		fetchChild.path = filepath.Join(dir, "fetchchild")
		out, err := exec.Command("go", "build", "-o", fetchChild.path, "./internal/fetchchild").CombinedOutput()
		if err != nil {
			fetchChild.err = fmt.Errorf("go build ./internal/fetchchild: %v: %s", err, out)
		}
	})
	if fetchChild.err != nil {
		b.Fatal(fetchChild.err)
	}
	return fetchChild.path
}

// BenchmarkShallowFetchVsGitClone compares our snapshot, in a child
// binary of its own, with `git clone --depth 1`: time and peak RSS (GNU
// time's %M, the largest process of each).
//
// Measured 2026-11-28 on the 2-core CI machine, `go test -run '^$' -bench
// . -benchtime 3x ./gitsource/`: fetch 17.8 MiB vs git's 6.9 MiB
// (rss-ratio 2.57, time-ratio 1.35); fetch+read-all 20.9 vs 8.1 MiB (2.58).
// The target of 2x git's peak is not met. Most of the excess is the
// child's fixed cost: it peaks at 9.1 MiB doing nothing, and at the end of
// a fetch its executable's text and read-only data are ~8 MiB resident
// (libc 1.4 MiB). The fetch itself allocates 7.5 MB in all — go-git
// streams the pack to disk, nothing holds the packfile or a tree — and the
// Go heap stays near the runtime's 4 MiB minimum; above the idle child the
// fetch costs 1.25x git's whole peak (rss-above-idle-ratio). With 32,000
// files (measured by hand) it is 29-33 MiB vs git's 14.4 (2.0-2.3x): the
// live heap reaches 10 MB, ~150 bytes per object, all in go-git's packfile
// parser and index writer. GOGC=50 saves ~1.7 MiB here (2.3-2.4x) at a CPU
// cost that expsync does not pay in production, so the child does not
// take it either.
func BenchmarkShallowFetchVsGitClone(b *testing.B) {
	url, _ := benchServer(b)
	repoURL := url + "/big.git"
	exe := buildFetchChild(b)
	// The child's baseline: the same binary starting and exiting at once.
	_, baseRSS := runChild(b, exec.Command(exe, "idle"), false)
	for _, c := range []struct {
		name, mode string
		gitArgs    []string
	}{
		// Fetch only: our snapshot (no work tree) vs a bare shallow clone.
		{"fetch", "fetch", []string{"clone", "-q", "--bare", "--depth", "1", "--single-branch", "--no-tags"}},
		// Fetch and read every file vs a shallow clone with checkout.
		{"fetch+read-all", "read", []string{"clone", "-q", "--depth", "1", "--single-branch", "--no-tags"}},
	} {
		b.Run(c.name, func(b *testing.B) {
			var ours, theirs time.Duration
			var oursRSS, gitRSS int64
			for i := 0; i < b.N; i++ {
				d, rss := runChild(b, exec.Command(exe, repoURL, b.TempDir(), c.mode), false)
				ours += d
				oursRSS = max(oursRSS, rss)
				args := append(append([]string{}, c.gitArgs...), repoURL, filepath.Join(b.TempDir(), "clone"))
				d, rss = runChild(b, exec.Command("git", args...), false)
				theirs += d
				gitRSS = max(gitRSS, rss)
			}
			b.ReportMetric(float64(ours.Milliseconds())/float64(b.N), "ours-ms")
			b.ReportMetric(float64(theirs.Milliseconds())/float64(b.N), "git-ms")
			b.ReportMetric(float64(ours)/float64(theirs), "time-ratio")
			b.ReportMetric(float64(oursRSS)/(1<<20), "ours-maxrss-MiB")
			b.ReportMetric(float64(gitRSS)/(1<<20), "git-maxrss-MiB")
			b.ReportMetric(float64(oursRSS)/float64(gitRSS), "rss-ratio")
			b.ReportMetric(float64(baseRSS)/(1<<20), "ours-idle-MiB")
			b.ReportMetric(float64(oursRSS-baseRSS)/float64(gitRSS), "rss-above-idle-ratio")
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
