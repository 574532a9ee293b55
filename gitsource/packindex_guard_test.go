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
	"testing"
	"time"
)

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
			start := time.Now()
			_, _, err := indexPack(ctx, bytes.NewReader(pack), noInflateLimit)
			took := time.Since(start)
			t.Logf("%d-byte pack: %v after %v", len(pack), err, took)
			if !errors.Is(err, context.DeadlineExceeded) {
				t.Fatalf("indexPack = %v, want the context's error", err)
			}
			if isCorruption(err) {
				t.Errorf("isCorruption(%q) = true: the cache would be dropped and fetched again", err)
			}
			// Uninterrupted, either pack takes well over 10 s on this machine.
			if took > after+3*time.Second {
				t.Errorf("indexing went on for %v after its context ended", took-after)
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
			_, _, err := indexPack(context.Background(), bytes.NewReader(c.pack), limit)
			if !c.refuse {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrRepoTooLarge) || isCorruption(err) {
				t.Fatalf("indexPack = %v, want ErrRepoTooLarge, not corruption", err)
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
	fs, ok := src.fetchStorer(ctx, st).(fetchStorage)
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
	took := time.Since(start)
	if !errors.Is(err, context.DeadlineExceeded) || took > 4*time.Second {
		t.Fatalf("Close = %v after %v, want the deadline's error within a few seconds", err, took)
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
