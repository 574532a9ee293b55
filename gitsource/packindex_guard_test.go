package gitsource

import (
	"bytes"
	"context"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
)

// maxCPUAfterEnd bounds the CPU time indexing may use once its context has
// ended: a few looks at the context apart (guardCheckBytes of work, a few
// milliseconds each) and the garbage collector's share, against well over
// 10 s of CPU time for either test pack uninterrupted. CPU time, not wall
// time: on a loaded machine (load 20 on 2 cores) a process waits seconds
// for a core, and wall time then says nothing about the work done.
const maxCPUAfterEnd = time.Second

// processCPU is the CPU time (user and system, every thread) this process
// has used so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// cpuAfterEnd starts counting the CPU time this process uses from the
// moment ctx ends; the function it returns waits for that moment and
// reports the CPU time used since. Indexing keeps one core busy; when its
// context ends, the other core notes the time (context.AfterFunc).
func cpuAfterEnd(ctx context.Context) func() time.Duration {
	var atEnd atomic.Int64
	ended := make(chan struct{})
	context.AfterFunc(ctx, func() {
		atEnd.Store(int64(processCPU()))
		close(ended)
	})
	return func() time.Duration {
		<-ended
		return processCPU() - time.Duration(atEnd.Load())
	}
}

// noInflateLimit indexes a pack without the repository size limit.
const noInflateLimit = math.MaxInt64

// deltaFanPack is a 64 KiB blob and n OFS deltas on it, each making a
// copies x 64 KiB object: a pack of a few KiB whose indexing makes (and
// hashes) n x copies x 64 KiB, all within the per-object and per-chain
// bounds (the deltas are siblings, not a chain).
func deltaFanPack(t testing.TB, n, copies int) []byte {
	t.Helper()
	var p handPack
	at := p.add(t, 3, 0, bytes.Repeat([]byte("a"), 1<<16))
	p.addRepeated(t, 6, at, copyDelta(1<<16, copies), n)
	return p.bytes()
}

// blobsPack is n blobs of size bytes of one repeated byte (a pack of a
// few KiB per MiB of blob).
func blobsPack(t testing.TB, n, size int) []byte {
	t.Helper()
	var p handPack
	p.addRepeated(t, 3, 0, bytes.Repeat([]byte("z"), size), n)
	return p.bytes()
}

// TestIndexPackStopsWhenItsContextEnds: a pack whose indexing would keep a
// core busy for many seconds (25 GiB made by deltas, or 6 GiB of blobs to
// inflate and hash) stops soon after its context ends, with an error that
// wraps the context's (so a fetch's timeout is reported as a timeout), not
// a corruption that would make the cache be fetched again.
func TestIndexPackStopsWhenItsContextEnds(t *testing.T) {
	for _, c := range []struct {
		name string
		pack func(testing.TB) []byte
	}{
		{"resolving deltas", func(t testing.TB) []byte { return deltaFanPack(t, 400, 1024) }},
		{"inflating objects", func(t testing.TB) []byte { return blobsPack(t, 400, 16<<20) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			pack := c.pack(t)
			const after = 200 * time.Millisecond
			ctx, cancel := context.WithTimeout(context.Background(), after)
			defer cancel()
			cpuSinceEnd := cpuAfterEnd(ctx)
			start := time.Now()
			_, _, err := gitpack.Index(ctx, bytes.NewReader(pack), noInflateLimit)
			took, cpu := time.Since(start), cpuSinceEnd()
			t.Logf("%d-byte pack: %v after %v (%v of CPU time after the context ended)", len(pack), err, took, cpu)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("gitpack.Index = %v, want the context's error", err)
			}
			if isCorruption(err) {
				t.Errorf("isCorruption(%q) = true: the cache would be dropped and fetched again", err)
			}
			if cpu > maxCPUAfterEnd {
				t.Errorf("indexing used %v of CPU time after its context ended", cpu)
			}
		})
	}
}

// TestIndexPackRefusesAPackOverTheRepositoryLimit: what a pack inflates
// to, objects as stored plus what deltas make, is bounded by the
// repository's size limit; past it the pack is refused with
// ErrRepoTooLarge naming the limit and how to raise it, before the object
// that passes it is made.
func TestIndexPackRefusesAPackOverTheRepositoryLimit(t *testing.T) {
	const limit = 8 << 20
	for _, c := range []struct {
		name   string
		pack   []byte
		refuse bool
	}{
		{"blobs within the limit", blobsPack(t, 7, 1<<20), false},
		{"blobs over the limit", blobsPack(t, 9, 1<<20), true},
		{"one blob over the limit", blobsPack(t, 1, limit+1), true},
		{"deltas within the limit", deltaFanPack(t, 7, 16), false},
		{"deltas making more than the limit", deltaFanPack(t, 200, 16), true},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := gitpack.Index(context.Background(), bytes.NewReader(c.pack), limit)
			if !c.refuse {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrRepoTooLarge) || isCorruption(err) {
				t.Fatalf("gitpack.Index = %v, want ErrRepoTooLarge, not corruption", err)
			}
			for _, want := range []string{strconv.Itoa(limit), "MaxRepoBytes"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
		})
	}
}

// TestFetchStopsIndexingAtItsDeadline: the pack writer a fetch gets indexes
// within the fetch's context: at the deadline it stops, leaves no file in
// the pack folder, and the Source reports a timeout naming the repository,
// with the hint that says which limits to raise.
func TestFetchStopsIndexingAtItsDeadline(t *testing.T) {
	src, err := New(Repository{URL: "https://git.example.org/team/exps.git", Refs: []RefPolicy{{Pattern: "main"}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	st, err := src.openStorage()
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	cpuSinceEnd := cpuAfterEnd(ctx)
	fs, ok := src.fetchStorer(ctx, st).(gitpack.FetchStorage)
	if !ok {
		t.Fatalf("fetchStorer returned %T, not the indexing storage", src.fetchStorer(ctx, st))
	}
	w, err := fs.PackfileWriter()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write(deltaFanPack(t, 400, 1024)); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	err = w.Close()
	took, cpu := time.Since(start), cpuSinceEnd()
	if !errors.Is(err, context.DeadlineExceeded) || cpu > maxCPUAfterEnd {
		t.Fatalf("Close = %v after %v, %v of CPU time after the deadline; want the deadline's error, at most %v after it",
			err, took, cpu, maxCPUAfterEnd)
	}
	left, _ := os.ReadDir(filepath.Join(src.gitDir(), "objects", "pack"))
	if len(left) != 0 {
		t.Errorf("the pack folder holds %d files after the failed index", len(left))
	}
	werr := src.wrap("fetch refs/heads/main", err)
	for _, want := range []string{"git.example.org/team/exps.git", ErrTimeout.Error(), "raise the repository's timeout"} {
		if !strings.Contains(werr.Error(), want) {
			t.Errorf("error %q does not say %q", werr, want)
		}
	}
	if !errors.Is(werr, ErrTimeout) {
		t.Errorf("errors.Is(%v, ErrTimeout) = false", werr)
	}
}

// TestSnapshotRefusesARepositoryThatInflatesPastItsLimit: a repository
// whose files compress well is small on the wire and on disk, but the
// limit bounds what it inflates to: a real fetch of 4 MiB of text with a
// 1 MiB limit (its cache would be ~10 KiB) is refused with ErrRepoTooLarge
// naming the repository and the limit, and the cache is dropped.
func TestSnapshotRefusesARepositoryThatInflatesPastItsLimit(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("text")
	p := newPeer(t, srv.peerURL("text"))
	head := p.commit("text", map[string]string{"log.txt": strings.Repeat("all work and no play\n", 200_000)})
	p.push("main")
	const limit = 1 << 20
	src, err := New(Repository{URL: srv.url("text"), Auth: basicAuth(), Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{MaxRepoBytes: limit}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sn, err := src.Snapshot(testCtx(t), "main", head)
	if err == nil {
		sn.Close()
		t.Fatal("a repository inflating to 4 MiB was fetched with a 1 MiB limit")
	}
	for _, want := range []string{srv.url("text"), strconv.Itoa(limit), "MaxRepoBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	if !errors.Is(err, ErrRepoTooLarge) {
		t.Errorf("errors.Is(%v, ErrRepoTooLarge) = false", err)
	}
	if _, err := os.Stat(src.gitDir()); !os.IsNotExist(err) {
		t.Errorf("the refused repository's cache was kept: %v", err)
	}
}
