package gitsource

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// breakCache makes the cached commit's tree incomplete (one blob lost),
// as go-git's shallow fetch after a force-push can leave it.
func breakCache(t *testing.T, src *Source, blob string) {
	t.Helper()
	packs, _ := filepath.Glob(filepath.Join(src.gitDir(), "objects", "pack", "*.pack"))
	for _, pack := range packs {
		data, err := os.ReadFile(pack)
		if err != nil {
			t.Fatal(err)
		}
		os.Remove(pack)
		os.Remove(strings.TrimSuffix(pack, ".pack") + ".idx")
		mustGitIn(t, src.gitDir(), data, "unpack-objects", "-q")
	}
	if err := os.Remove(filepath.Join(src.gitDir(), "objects", blob[:2], blob[2:])); err != nil {
		t.Fatal(err)
	}
}

// TestCacheDropWithTrashLeftBehind: a dropped cache is renamed aside until
// no snapshot reads it. A process killed while a snapshot read it leaves
// that folder behind, and a second Source on the same cache folder (another
// process, or a Source built again) has its own in use. Dropping the cache
// must still work: before, every later drop renamed onto the same name,
// failed ("file exists"), and the repository could not recover from a
// force-push again.
func TestCacheDropWithTrashLeftBehind(t *testing.T) {
	c1, blob, newSrc := oneCommitCache(t)
	ctx := testCtx(t)
	first := newSrc()
	sn, err := first.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()

	// What a killed process leaves: its dropped cache, not yet deleted.
	leftover := filepath.Join(first.dir, "git.old-1")
	if err := os.MkdirAll(filepath.Join(leftover, "objects"), 0o700); err != nil {
		t.Fatal(err)
	}
	breakCache(t, first, blob)
	// first drops its cache while its own snapshot still reads the old one.
	held, err := first.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatalf("snapshot with a broken cache and a dropped cache left behind: %v", err)
	}
	defer held.Close()

	// A second Source on the same folder meets a broken cache too.
	breakCache(t, first, blob)
	second := newSrc()
	for _, src := range []*Source{second, first} {
		sn, err := src.Snapshot(ctx, "main", c1)
		if err != nil {
			t.Fatalf("snapshot with a broken cache while another Source's dropped cache is in use: %v", err)
		}
		if d := cmp.Diff(map[string]string{"a.txt": "1"}, readAll(t, sn)); d != "" {
			t.Errorf("(-want +got):\n%s", d)
		}
		sn.Close()
		breakCache(t, first, blob)
	}
	if d := cmp.Diff(map[string]string{"a.txt": "1"}, readAll(t, held)); d != "" {
		t.Errorf("the snapshot held across drops reads (-want +got):\n%s", d)
	}
}

// TestCacheDropRemovesDroppedCachesLeftBehind: a process killed while a
// snapshot read its dropped cache leaves that folder behind, a whole copy
// of the cache. The next drop by any process removes it, but not a
// dropped cache another live Source still reads.
func TestCacheDropRemovesDroppedCachesLeftBehind(t *testing.T) {
	c1, blob, newSrc := oneCommitCache(t)
	ctx := testCtx(t)
	live, other := newSrc(), newSrc()
	held, err := live.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	// live drops the cache its snapshot reads: kept until it is closed.
	breakCache(t, live, blob)
	sn, err := live.Snapshot(ctx, "main", c1)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	// What a killed process left: a dropped cache no one reads.
	crashed := filepath.Join(live.dir, "git.old-crashed")
	if err := os.MkdirAll(filepath.Join(crashed, "git", "objects", "pack"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(crashed, "git", "objects", "pack", "pack-x.pack"), []byte("old pack"), 0o444); err != nil {
		t.Fatal(err)
	}

	breakCache(t, other, blob)
	sn, err = other.Snapshot(ctx, "main", c1) // drops the cache again
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if _, err := os.Stat(crashed); !os.IsNotExist(err) {
		t.Errorf("the dropped cache a killed process left behind is still there: %v", err)
	}
	if d := cmp.Diff(map[string]string{"a.txt": "1"}, readAll(t, held)); d != "" {
		t.Errorf("a live Source's snapshot of its dropped cache reads (-want +got):\n%s", d)
	}
	held.Close()
	left, _ := filepath.Glob(filepath.Join(live.dir, "git.old-*"))
	if len(left) != 0 {
		t.Errorf("dropped caches left after every snapshot closed: %v", left)
	}
}

// oneCommitCache serves a repository whose main holds one commit (c1, with
// a.txt's blob) and returns a maker of Sources sharing one cache folder.
func oneCommitCache(t *testing.T) (c1, blob string, newSrc func() *Source) {
	t.Helper()
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 = p.commit("c1", map[string]string{"a.txt": "1"})
	p.push("main")
	blob = runGit(t, p.dir, "rev-parse", c1+":a.txt")
	cacheRoot := t.TempDir()
	newSrc = func() *Source {
		src, err := New(Repository{URL: srv.url("exps"), Auth: basicAuth(), Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
			URLPolicy: URLPolicy{AllowHTTP: true}}, cacheRoot)
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	return c1, blob, newSrc
}
