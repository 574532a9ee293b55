package gitsource

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestSnapshotReadsAcrossACacheDrop: a Snapshot stays readable when the
// cache is dropped under it (a verification that fetches afresh, a
// corruption met by another operation) and fetched again, even when its
// objects are spread over more packs than a storage keeps open.
func TestSnapshotReadsAcrossACacheDrop(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)
	want := map[string]string{}
	var head string
	for i := range 8 { // one pack per incremental fetch
		name := fmt.Sprintf("f%d.txt", i)
		want[name] = fmt.Sprintf("content %d\n", i)
		head = p.commit(name, map[string]string{name: want[name]})
		p.push("main")
		sn, err := src.Snapshot(ctx, "main", head)
		if err != nil {
			t.Fatal(err)
		}
		sn.Close()
	}
	held, err := src.Snapshot(ctx, "main", head)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	unlock, err := src.lockCache(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.dropCache(); err != nil {
		t.Fatal(err)
	}
	unlock()
	// The repository moves on, unrelated: the new cache holds none of it.
	runGit(t, p.dir, "checkout", "-q", "--orphan", "other")
	runGit(t, p.dir, "rm", "-q", "-rf", ".")
	other := p.commit("other", map[string]string{"x.txt": "x"})
	p.push("--force", "other:main")
	sn, err := src.Snapshot(ctx, "main", other)
	if err != nil {
		t.Fatal(err)
	}
	sn.Close()
	if d := cmp.Diff(want, readAll(t, held)); d != "" {
		t.Errorf("the snapshot held across the drop reads (-want +got):\n%s", d)
	}
}
