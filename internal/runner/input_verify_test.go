package runner

import (
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
)

// corruptObject rewrites a store object in place with other bytes (a
// power cut that left it short, a disk error), as root could.
func corruptObject(t *testing.T, st *store.Local, sha, content string) {
	t.Helper()
	path := st.ObjectPath(sha)
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o444); err != nil {
		t.Fatal(err)
	}
}

// TestCorruptURLInputIsFetchedAgain: a URL input whose store object was
// cut short on disk is not placed as it is (the run would read the broken
// file, its result attested as the genuine input's): the object is dropped
// and fetched again — in a new process as in the one that verified it.
func TestCorruptURLInputIsFetchedAgain(t *testing.T) {
	const content = "the whole data set\n"
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		hits.Add(1)
		w.Write([]byte(content))
	}))
	defer srv.Close()
	f := newFixture(t)
	in := contract.Input{Name: "data", Path: "inputs/d.csv", SHA256: shaOf(content), URI: srv.URL + "/d.csv"}
	c := shell(`cat inputs/d.csv`).input(in).build()
	if res := f.run(c); res.Status != contract.Succeeded || res.LogTail != content {
		t.Fatalf("first run: status %s (%s) log %q", res.Status, res.Error, res.LogTail)
	}

	// Within this process: the object changed after it was verified.
	corruptObject(t, f.st, in.SHA256, "the who")
	if res := f.run(c); res.Status != contract.Succeeded || res.LogTail != content {
		t.Errorf("after the object was cut short: status %s (%s) log %q, want the whole input", res.Status, res.Error, res.LogTail)
	}

	// A new process on the same store: nothing of the object in memory.
	st, err := store.OpenLocal(f.st.Root())
	if err != nil {
		t.Fatal(err)
	}
	f.st, f.opts.Store = st, st
	corruptObject(t, st, in.SHA256, "the who")
	before := hits.Load()
	if res := f.run(c); res.Status != contract.Succeeded || res.LogTail != content {
		t.Errorf("new process: status %s (%s) log %q, want the whole input", res.Status, res.Error, res.LogTail)
	}
	if hits.Load() != before+1 {
		t.Errorf("fetched %d times after the corruption, want once", hits.Load()-before)
	}
	if err := st.Verify(context.Background(), in.SHA256); err != nil {
		t.Errorf("the object was not restored: %v", err)
	}
}

// TestCorruptStoreInputIsRefused: an input with no URL to fetch it from
// again, whose object is corrupt, is refused naming the input and both
// digests; the command never starts, and the bad object leaves the store.
func TestCorruptStoreInputIsRefused(t *testing.T) {
	f := newFixture(t)
	obj, err := f.st.PutBytes(context.Background(), []byte(strings.Repeat("table row\n", 10000)))
	if err != nil {
		t.Fatal(err)
	}
	st, err := store.OpenLocal(f.st.Root()) // a new process: no copy in memory
	if err != nil {
		t.Fatal(err)
	}
	f.st, f.opts.Store = st, st
	corruptObject(t, st, obj.SHA256, "table row\n")
	marker := filepath.Join(t.TempDir(), "started")
	in := contract.Input{Name: "table", Path: "t.csv", SHA256: obj.SHA256, RepoPath: "data/t.csv"}
	res := f.run(shell(`touch "$MARKER"`).env("MARKER", marker).input(in).build())
	if res.Status != contract.Errored || res.Status.Cacheable() {
		t.Errorf("status %s; want Errored (the store's fault, never cached)", res.Status)
	}
	for _, part := range []string{`input "table" (repository file data/t.csv)`, obj.SHA256, shaOf("table row\n")} {
		if !strings.Contains(res.Error, part) {
			t.Errorf("error %q does not name %s", res.Error, part)
		}
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command ran on a corrupt input")
	}
	if ok, _ := st.Has(context.Background(), obj.SHA256); ok {
		t.Errorf("the corrupt object is still in the store")
	}
}

// TestInputThroughASymlinkOfTheContextIsAResult: an input whose path goes
// through a folder the context makes a symlink fails the same way on every
// machine: a Failed result naming the input (cached, committed), not an
// error tried again at every reconcile.
func TestInputThroughASymlinkOfTheContextIsAResult(t *testing.T) {
	f := newFixture(t)
	// The context makes data a symlink (to a folder outside the work folder).
	target, err := f.st.PutBytes(context.Background(), []byte(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	treeID := strings.Repeat("5", 40)
	m := store.Manifest{Entries: []contract.File{{Path: "data", Mode: store.ModeSymlink, SHA256: target.SHA256, Size: target.Size}}}
	if err := f.st.PutTree(context.Background(), treeID, m); err != nil {
		t.Fatal(err)
	}
	obj, err := f.st.PutBytes(context.Background(), []byte("rows\n"))
	if err != nil {
		t.Fatal(err)
	}
	in := contract.Input{Name: "rows", Path: "data/rows.csv", SHA256: obj.SHA256}
	res := f.run(shell(`true`).context(treeID).input(in).retries(3, 1).build())
	if res.Status != contract.Failed || !res.Status.Cacheable() || res.Attempts != 1 ||
		!strings.Contains(res.Error, `input "rows"`) || !strings.Contains(res.Error, "symlink") {
		t.Errorf("status %s attempts %d error %q; want one Failed attempt naming the input and the symlink", res.Status, res.Attempts, res.Error)
	}
}
