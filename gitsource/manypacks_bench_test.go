package gitsource

import (
	"context"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
)

// BenchmarkSnapshotAfterManyFetchesVsGitFetch: `expsync serve` polls for
// weeks and every new commit it snapshots is one incremental fetch, one
// new pack in the cache. After N such fetches (N = 10, 100, 500), each
// iteration moves the server's main one commit on (5 changed files) and
// measures, side by side:
//
//   - ours: Snapshot(main) (the fetch of that commit) and reading 3 files;
//     git: `git fetch` into a bare CLI clone that started from the same
//     shallow clone and fetched the same commits, then `git show` of the
//     3 files (one process).
//   - ours-cached: a Snapshot of the commit just fetched, by ID (no
//     fetch: what a run's snapshot costs) and reading the 3 files; git:
//     `git show` alone.
//
// Metrics: ours-ms, git-ms, ratio; ours-cached-ms, git-show-ms,
// cached-ratio; ours-alloc-KiB (allocated per snapshot+read); ours-fds
// (descriptors the open snapshot holds); packs, cache-KiB (our cache after
// the run) and git-packs, git-loose, git-KiB (the CLI clone's objects):
// git keeps a fetch of under 100 objects (transfer.unpackLimit) as loose
// objects and its `gc --auto` after a fetch packs them once there are
// ~6,700, or more than 50 packs.
//
//	go test -run '^$' -bench SnapshotAfterManyFetches -benchtime 5x -count 3 ./gitsource/
//
// One repository (2,000 files, 50 commits, then 600 more one by one) and
// one cache per count are advanced through 10, 100 and 500 fetches.
func BenchmarkSnapshotAfterManyFetchesVsGitFetch(b *testing.B) {
	skipShort(b)
	root := b.TempDir()
	url := gitDaemon(b, root)
	h := newManyFetches(b, root, url)
	for _, n := range []int{10, 100, 500} {
		b.Run(fmt.Sprintf("fetches=%d", n), func(b *testing.B) {
			h.advanceTo(b, n)
			var ours, git, oursCached, gitShow time.Duration
			var alloc uint64
			fds := 0
			for i := 0; i < b.N; i++ {
				h.step(b)
				var m0, m1 runtime.MemStats
				runtime.ReadMemStats(&m0)
				t0 := time.Now()
				sn, err := h.src.Snapshot(context.Background(), "main", "")
				if err == nil {
					err = h.readFiles(sn)
				}
				ours += time.Since(t0)
				runtime.ReadMemStats(&m1)
				alloc += m1.TotalAlloc - m0.TotalAlloc
				if err != nil {
					b.Fatal(err)
				}
				fds = max(fds, openFDs()-h.baseFDs)
				sn.Close()
				t0 = time.Now()
				h.gitFetch(b)
				h.gitShowFiles(b)
				git += time.Since(t0)

				t0 = time.Now()
				sn, err = h.src.Snapshot(context.Background(), "main", h.commits[h.at])
				if err == nil {
					err = h.readFiles(sn)
					sn.Close()
				}
				oursCached += time.Since(t0)
				if err != nil {
					b.Fatal(err)
				}
				t0 = time.Now()
				h.gitShowFiles(b)
				gitShow += time.Since(t0)
			}
			per := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / float64(b.N) }
			b.ReportMetric(per(ours), "ours-ms")
			b.ReportMetric(per(git), "git-ms")
			b.ReportMetric(float64(ours)/float64(git), "ratio")
			b.ReportMetric(per(oursCached), "ours-cached-ms")
			b.ReportMetric(per(gitShow), "git-show-ms")
			b.ReportMetric(float64(oursCached)/float64(gitShow), "cached-ratio")
			b.ReportMetric(float64(alloc)/1024/float64(b.N), "ours-alloc-KiB")
			b.ReportMetric(float64(fds), "ours-fds")
			packs, _ := countPacks(filepath.Join(h.src.gitDir(), "objects"))
			size, _ := h.src.cacheBytes()
			b.ReportMetric(float64(packs), "packs")
			b.ReportMetric(float64(size)/1024, "cache-KiB")
			gitPacks, gitLoose := countPacks(filepath.Join(h.clone, "objects"))
			b.ReportMetric(float64(gitPacks), "git-packs")
			b.ReportMetric(float64(gitLoose), "git-loose")
			b.ReportMetric(float64(dirBytes(filepath.Join(h.clone, "objects")))/1024, "git-KiB")
		})
	}
}

const (
	manyFetchesBase  = 50   // commits before the cache is made
	manyFetchesSteps = 650  // commits after: 500 fetches and the iterations
	manyFetchesFiles = 2000 // files at every commit
)

// movingRepo is a generated server repository whose main is moved one
// commit at a time, through the history generateRepo made.
type movingRepo struct {
	bare    string
	commits []string // oldest first
	at      int      // index of main's commit
}

// newMovingRepo generates bare with commits commits (see generateRepoWith)
// and points main at the first + start commits.
func newMovingRepo(tb testing.TB, bare string, start, commits, files int,
	content func(rng *rand.Rand, i, version int) []byte) *movingRepo {
	tb.Helper()
	generateRepoWith(tb, bare, commits, files, content)
	r := &movingRepo{bare: bare, commits: strings.Fields(runGit(tb, bare, "rev-list", "--reverse", "main")), at: start}
	r.setMain(tb)
	return r
}

func (r *movingRepo) head() string { return r.commits[r.at] }

// next moves main one commit on and returns it.
func (r *movingRepo) next(tb testing.TB) string {
	tb.Helper()
	r.at++
	r.setMain(tb)
	return r.head()
}

// setMain points the server's main at commits[at] (a loose ref: git
// daemon reads it at every connection).
func (r *movingRepo) setMain(tb testing.TB) {
	tb.Helper()
	if r.at >= len(r.commits) {
		tb.Fatalf("the generated repository has %d commits; move main fewer times (-benchtime)", len(r.commits))
	}
	if err := gitpack.WriteFileAtomic(filepath.Join(r.bare, "refs", "heads"), filepath.Join(r.bare, "refs", "heads", "main"),
		[]byte(r.commits[r.at]+"\n")); err != nil {
		tb.Fatal(err)
	}
}

// manyFetches is a movingRepo, our cache and a git CLI clone that follow it.
type manyFetches struct {
	*movingRepo
	clone   string
	fetched int // incremental fetches so far
	src     *Source
	baseFDs int
	files   []string
}

func newManyFetches(b *testing.B, root, url string) *manyFetches {
	h := &manyFetches{clone: filepath.Join(root, "clone")}
	h.movingRepo = newMovingRepo(b, filepath.Join(root, "many.git"), manyFetchesBase-1,
		manyFetchesBase+manyFetchesSteps, manyFetchesFiles, randomContent)
	h.src = gitSource(b, url+"/many.git", filepath.Join(root, "cache"))
	h.files = []string{"dir000/file0000.txt", "dir010/file1000.txt", "dir019/file1999.txt"}
	sn, err := h.src.Snapshot(context.Background(), "main", "")
	if err != nil {
		b.Fatal(err)
	}
	sn.Close()
	runGit(b, root, "clone", "-q", "--bare", "--depth", "1", "--single-branch", "--no-tags", url+"/many.git", h.clone)
	h.baseFDs = openFDs()
	return h
}

// step moves main one commit on.
func (h *manyFetches) step(b *testing.B) {
	h.next(b)
	h.fetched++
}

// advanceTo makes incremental fetches, on both sides, until n were made.
func (h *manyFetches) advanceTo(b *testing.B, n int) {
	for h.fetched < n {
		h.step(b)
		sn, err := h.src.Snapshot(context.Background(), "main", "")
		if err != nil {
			b.Fatal(err)
		}
		sn.Close()
		h.gitFetch(b)
	}
}

func (h *manyFetches) readFiles(sn *Snapshot) error {
	for _, f := range h.files {
		if _, err := sn.ReadFile(f, 0); err != nil {
			return err
		}
	}
	return nil
}

func (h *manyFetches) gitFetch(b *testing.B) {
	runGit(b, h.clone, "fetch", "-q", "origin", "+refs/heads/main:refs/heads/main")
}

func (h *manyFetches) gitShowFiles(b *testing.B) {
	args := []string{"show"}
	for _, f := range h.files {
		args = append(args, "main:"+f)
	}
	cmd := exec.Command("git", args...)
	cmd.Dir, cmd.Env = h.clone, gitEnv(os.TempDir())
	if out, err := cmd.CombinedOutput(); err != nil {
		b.Fatalf("git show: %v: %s", err, out)
	}
}

// countPacks counts the pack files and loose objects under an objects folder.
func countPacks(objects string) (packs, loose int) {
	_ = filepath.WalkDir(objects, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		rel, _ := filepath.Rel(objects, p)
		switch {
		case strings.HasPrefix(rel, "pack/") && strings.HasSuffix(rel, ".pack"):
			packs++
		case len(rel) == 41 && rel[2] == '/':
			loose++
		}
		return nil
	})
	return packs, loose
}

func dirBytes(dir string) int64 {
	var n int64
	_ = filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func openFDs() int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0
	}
	return len(entries)
}

// BenchmarkPackMergeVsGitRepack: the worst merge, every pack of a cache
// (the shallow fetch of 8,000 files and 16 incremental fetches) into one,
// against `git repack -a -d` of a copy of the same cache (git reads our
// cache as the bare repository it is). Both start from a fresh copy.
// Metrics: ours-ms, git-ms, ratio; ours-alloc-MiB (everything the merge
// allocated, an upper bound of its heap) and git-maxrss-MiB; objects.
//
//	go test -run '^$' -bench PackMerge -benchtime 5x -count 3 ./gitsource/
func BenchmarkPackMergeVsGitRepack(b *testing.B) {
	skipShort(b)
	root := b.TempDir()
	url := gitDaemon(b, root)
	repo := newMovingRepo(b, filepath.Join(root, "m.git"), 0, maxCachePacks, bigFiles, randomContent)
	src := gitSource(b, url+"/m.git", filepath.Join(root, "cache"))
	for {
		sn, err := src.Snapshot(context.Background(), "main", "")
		if err != nil {
			b.Fatal(err)
		}
		sn.Close()
		if repo.at == len(repo.commits)-1 {
			break
		}
		repo.next(b)
	}
	packs, err := gitpack.List(src.packDir())
	if err != nil || len(packs) != maxCachePacks {
		b.Fatalf("the cache holds %d packs, want %d: %v", len(packs), maxCachePacks, err)
	}
	fresh := func() string {
		dir := filepath.Join(b.TempDir(), "git")
		if out, err := exec.Command("cp", "-a", src.gitDir(), dir).CombinedOutput(); err != nil {
			b.Fatalf("cp: %v: %s", err, out)
		}
		return dir
	}
	var ours, git time.Duration
	var alloc uint64
	var gitRSS int64
	objects := 0
	for i := 0; i < b.N; i++ {
		dir := fresh()
		var m0, m1 runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&m0)
		t0 := time.Now()
		merged, err := gitpack.Merge(context.Background(), dir, packs)
		ours += time.Since(t0)
		runtime.ReadMemStats(&m1)
		alloc += m1.TotalAlloc - m0.TotalAlloc
		if err != nil {
			b.Fatal(err)
		}
		idx, err := gitpack.ReadIndex(filepath.Join(dir, "objects", "pack", "pack-"+merged.String()+".idx"))
		if err != nil {
			b.Fatal(err)
		}
		n, _ := idx.Count()
		objects = int(n)
		d, rss := runChild(b, exec.Command("git", "--git-dir="+fresh(), "repack", "-a", "-d", "-q"), false)
		git += d
		gitRSS = max(gitRSS, rss)
	}
	b.ReportMetric(float64(ours.Microseconds())/1000/float64(b.N), "ours-ms")
	b.ReportMetric(float64(git.Microseconds())/1000/float64(b.N), "git-ms")
	b.ReportMetric(float64(ours)/float64(git), "ratio")
	b.ReportMetric(float64(alloc)/(1<<20)/float64(b.N), "ours-alloc-MiB")
	b.ReportMetric(float64(gitRSS)/(1<<20), "git-maxrss-MiB")
	b.ReportMetric(float64(objects), "objects")
}
