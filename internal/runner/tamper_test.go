package runner

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// TestWriteToSharedContextFileNeverStrandsTheResult: a run
// prints a context file (its log then has the file's digest) and appends to
// it through the hard link. The run fails, and its result must stay
// usable: the log blob it names is in the store with the right bytes, the
// cached result stands, and a cached result whose blobs went missing is run
// again instead of standing for a run that can never be committed.
func TestWriteToSharedContextFileNeverStrandsTheResult(t *testing.T) {
	for _, tc := range []struct{ name, content string }{
		{"small file (rehashed, repaired from memory)", "original\n"},
		{"large file (rehashed, dropped)", strings.Repeat("0123456789abcdef", 8<<10)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			ctx := context.Background()
			tr := f.exportContext(map[string]string{"data.txt": tc.content})
			c := shell(`cat data.txt; chmod u+w data.txt; echo APPENDED-BY-RUN >> data.txt`).context(tr).build()
			res, err := RunCached(ctx, c, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != contract.Failed || !strings.Contains(res.Error, "wrote to data.txt in place") {
				t.Fatalf("status %s error %q; want Failed naming data.txt", res.Status, res.Error)
			}
			if res.LogSHA256 != shaOf(tc.content) {
				t.Fatalf("log digest %s, want the context file's %s (the case under test)", res.LogSHA256, shaOf(tc.content))
			}
			if ok, _ := f.st.Has(ctx, res.LogSHA256); !ok {
				t.Fatalf("the result names log blob %s, which is not in the store", res.LogSHA256)
			}
			if got := f.blob(res.LogSHA256); got != tc.content {
				t.Fatalf("log blob holds %d bytes ending %q, want the run's output", len(got), got[max(0, len(got)-20):])
			}
			again, err := RunCached(ctx, c, f.opts)
			if err != nil || !again.Cached {
				t.Fatalf("second RunCached: cached %v err %v; want the cached failure", again != nil && again.Cached, err)
			}

			// The log blob disappears (a store pruned by hand, an older
			// expsync that dropped it): the result no longer stands.
			if err := os.Remove(f.st.ObjectPath(res.LogSHA256)); err != nil {
				t.Fatal(err)
			}
			if _, ok, err := Cached(ctx, f.st, c); ok || err != nil {
				t.Fatalf("Cached with a missing log blob: ok %v err %v; want a miss", ok, err)
			}
			rerun, err := RunCached(ctx, c, f.opts)
			if err != nil || rerun.Cached {
				t.Fatalf("RunCached after the blob went missing: cached %v err %v; want a new execution", rerun != nil && rerun.Cached, err)
			}
			// Re-exporting the tree (as every reconcile does) brings back
			// the bytes; the run is then as good as new.
			if _, err := store.ExportTree(ctx, f.st, tree.MemoryOf(map[string]string{"data.txt": tc.content}), ""); err != nil {
				t.Fatal(err)
			}
			if ok, _ := f.st.Has(ctx, res.LogSHA256); !ok {
				t.Fatalf("re-export did not restore the object")
			}
		})
	}
}

// TestRunRefusesAContextObjectChangedByAnotherRun: while one run appends
// to a shared object, another run starting from the same tree must not
// compute (and sign) results from the changed bytes: it sees a size that
// differs from the tree's and stops before its command starts.
func TestRunRefusesAContextObjectChangedByAnotherRun(t *testing.T) {
	f := newFixture(t)
	ctx := context.Background()
	content := strings.Repeat("large context file\n", 8<<10)
	files := map[string]string{"data.txt": content}
	tr := f.exportContext(files)
	obj := f.st.ObjectPath(shaOf(content))
	// What a run as root appending through its link does to the object.
	os.Chmod(obj, 0o644)
	fh, err := os.OpenFile(obj, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fh.WriteString("appended by another run\n")
	fh.Close()

	marker := filepath.Join(t.TempDir(), "started")
	res := f.run(shell(`touch "$MARKER"; wc -c data.txt`).env("MARKER", marker).context(tr).build())
	if res.Status != contract.Errored || !strings.Contains(res.Error, "another run wrote to it in place") {
		t.Fatalf("status %s error %q; want Error naming the changed object", res.Status, res.Error)
	}
	if _, err := os.Stat(marker); err == nil {
		t.Errorf("the command started on changed context bytes")
	}
	if ok, _ := f.st.Has(ctx, shaOf(content)); ok {
		t.Errorf("the changed object is still served under its digest")
	}
	f.exportContext(files)
	res = f.run(shell(`wc -c < data.txt`).context(tr).build())
	if res.Status != contract.Succeeded || strings.TrimSpace(res.LogTail) != strconv.Itoa(len(content)) {
		t.Errorf("after re-export: status %s (%s), log %q", res.Status, res.Error, res.LogTail)
	}
}
