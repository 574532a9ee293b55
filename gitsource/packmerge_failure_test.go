package gitsource

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
	"github.com/google/go-cmp/cmp"
)

// TestSnapshotWhenAPackMergeFails: merging packs only speeds later reads;
// the fetch before it succeeded and every object is in place. A merge that
// fails — here an old pack whose trailer no longer matches its name (a disk
// error in bytes no read touches), elsewhere a full disk — must not fail the
// snapshot: before, every later fetch tried the merge again and failed
// ("merge the cache's N packs: ... malformed"), so the repository could
// never be read again. A cache with a malformed pack is dropped and fetched
// afresh by the next operation.
func TestSnapshotWhenAPackMergeFails(t *testing.T) {
	repo, url := packMergeRepo(t, maxCachePacks+4, 50)
	src, err := New(Repository{URL: url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	snapshotAt(t, src, repo.head()).Close()
	for len(cachePacks(t, src)) < maxCachePacks {
		snapshotAt(t, src, repo.next(t)).Close()
	}
	// The smallest pack is always among those merged.
	packs, err := gitpack.List(src.packDir())
	if err != nil {
		t.Fatal(err)
	}
	smallest := packs[0]
	for _, p := range packs {
		if p.Size < smallest.Size {
			smallest = p
		}
	}
	path := filepath.Join(src.packDir(), "pack-"+smallest.Hash.String()+".pack")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	data[len(data)-1] ^= 0xff
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, data, 0o444); err != nil {
		t.Fatal(err)
	}

	// The fetch that leaves maxCachePacks+1 packs merges and fails.
	sn := snapshotAt(t, src, repo.next(t))
	if d := cmp.Diff(filesAt(t, repo.bare, repo.head()), readAll(t, sn)); d != "" {
		t.Errorf("files of the snapshot whose merge failed (-git +ours):\n%s", d)
	}
	sn.Close()
	// The next operation starts from a sound cache.
	drops := src.stats.drops.Load()
	sn = snapshotAt(t, src, repo.next(t))
	if src.stats.drops.Load() != drops+1 {
		t.Errorf("the cache with a malformed pack was not dropped")
	}
	if d := cmp.Diff(filesAt(t, repo.bare, repo.head()), readAll(t, sn)); d != "" {
		t.Errorf("files of the next snapshot (-git +ours):\n%s", d)
	}
	sn.Close()
	if n := len(cachePacks(t, src)); n > maxCachePacks {
		t.Errorf("the cache holds %d packs, want at most %d", n, maxCachePacks)
	}
	for _, p := range cachePacks(t, src) {
		runGit(t, src.packDir(), "verify-pack", "pack-"+p+".idx")
	}
}
