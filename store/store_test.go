package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

func shaOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func newLocal(t *testing.T) *Local {
	t.Helper()
	s, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestPutOpenHas(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	obj, err := s.Put(ctx, strings.NewReader("hello"), "")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(Object{SHA256: shaOf("hello"), Size: 5}, obj); diff != "" {
		t.Errorf("Put (-want +got):\n%s", diff)
	}
	if ok, err := s.Has(ctx, obj.SHA256); !ok || err != nil {
		t.Errorf("Has = %v, %v; want true", ok, err)
	}
	rc, err := s.Open(ctx, obj.SHA256)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(rc)
	rc.Close()
	if string(b) != "hello" {
		t.Errorf("Open read %q", b)
	}
	fi, err := os.Stat(s.ObjectPath(obj.SHA256))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm()&0o222 != 0 {
		t.Errorf("object mode %v is writable; objects must be read-only", fi.Mode())
	}
	if _, err := s.Open(ctx, shaOf("absent")); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open(absent) = %v, want ErrNotFound", err)
	}
	if _, err := s.Open(ctx, "../../etc/passwd"); err == nil {
		t.Errorf("Open of a path-like digest succeeded")
	}
}

func TestPutWithWrongDigestStoresNothing(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	want := shaOf("expected")
	_, err := s.Put(ctx, strings.NewReader("actual"), want)
	var mm *MismatchError
	if !errors.As(err, &mm) {
		t.Fatalf("Put = %v, want *MismatchError", err)
	}
	if diff := cmp.Diff(&MismatchError{Want: want, Got: shaOf("actual")}, mm); diff != "" {
		t.Errorf("mismatch (-want +got):\n%s", diff)
	}
	for _, sha := range []string{want, shaOf("actual")} {
		if ok, _ := s.Has(ctx, sha); ok {
			t.Errorf("store has %s after a mismatched Put", sha)
		}
	}
	tmp, _ := os.ReadDir(s.Root() + "/tmp")
	if len(tmp) != 0 {
		t.Errorf("temp files left behind: %v", tmp)
	}
}

func TestConcurrentPutsOfOneObject(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	data := bytes.Repeat([]byte("x"), 1<<20)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A second Local on the same folder, as another process would be.
			other, err := OpenLocal(s.Root())
			if err != nil {
				errs <- err
				return
			}
			if _, err := other.Put(ctx, bytes.NewReader(data), ""); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	sum := sha256.Sum256(data)
	rc, err := s.Open(ctx, hex.EncodeToString(sum[:]))
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, data) {
		t.Errorf("object content differs after concurrent puts")
	}
}

func TestRunFilesAndLock(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	id := shaOf("run")
	if _, err := s.RunFile(ctx, id, "result.json"); !errors.Is(err, ErrNotFound) {
		t.Errorf("RunFile before Put = %v, want ErrNotFound", err)
	}
	if err := s.PutRunFile(ctx, id, "result.json", []byte(`{"a":1}`)); err != nil {
		t.Fatal(err)
	}
	got, err := s.RunFile(ctx, id, "result.json")
	if err != nil || string(got) != `{"a":1}` {
		t.Errorf("RunFile = %q, %v", got, err)
	}
	for _, bad := range []string{"../x", "a/b", ".hidden", ""} {
		if err := s.PutRunFile(ctx, id, bad, nil); err == nil {
			t.Errorf("PutRunFile(%q) succeeded; want an error", bad)
		}
	}
	if err := s.PutRunFile(ctx, "../../x", "result.json", nil); err == nil {
		t.Errorf("PutRunFile with a path-like run ID succeeded")
	}

	// Mutual exclusion: goroutines with their own Local (own descriptors,
	// as separate processes would have) never overlap inside the lock.
	assertExclusive(t, s, id, (*Local).LockRun)

	// A waiting LockRun gives up when its context ends.
	unlock, err := s.LockRun(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	other, _ := OpenLocal(s.Root())
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := other.LockRun(cctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("LockRun of a held lock = %v, want deadline exceeded", err)
	}
}

// linkTree adds ReadLink to tree.Memory for symlinks written by the test.
type linkTree struct {
	*tree.Memory
	links map[string]string
	reads atomic.Int32
}

func (l *linkTree) ReadLink(p string) (string, error) { return l.links[p], nil }

func (l *linkTree) ReadFile(p string, limit int64) ([]byte, error) {
	l.reads.Add(1)
	return l.Memory.ReadFile(p, limit)
}

func newLinkTree(t *testing.T, files map[string]string) *linkTree {
	t.Helper()
	m := tree.MemoryOf(files)
	return &linkTree{Memory: m, links: map[string]string{}}
}

func TestExportTree(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	r := newLinkTree(t, map[string]string{
		"exp/run.py":        "print(1)\n",
		"exp/data/b.csv":    "b\n",
		"exp/data/a.csv":    "a\n",
		"exp/data.txt":      "sorts between data/ entries in Git, not in the manifest\n",
		"other/ignored.txt": "x",
	})
	if err := r.Write("exp/tool.sh", []byte("#!/bin/sh\n"), tree.ModeExecutable); err != nil {
		t.Fatal(err)
	}
	if err := r.Write("exp/link", []byte("data/a.csv"), tree.ModeSymlink); err != nil {
		t.Fatal(err)
	}
	r.links["exp/link"] = "data/a.csv"

	id, err := ExportTree(ctx, s, r, "exp")
	if err != nil {
		t.Fatal(err)
	}
	st, _ := r.Stat("exp")
	if id != st.Hash {
		t.Errorf("ExportTree returned %s, want the subtree's Git ID %s", id, st.Hash)
	}
	m, err := s.Tree(ctx, string(id))
	if err != nil {
		t.Fatal(err)
	}
	blob := func(p string) string {
		e, _ := r.Stat(p)
		return string(e.Hash)
	}
	want := []contract.File{
		{Path: "data.txt", Mode: "100644", SHA256: shaOf("sorts between data/ entries in Git, not in the manifest\n"), Size: 56, GitBlob: blob("exp/data.txt")},
		{Path: "data/a.csv", Mode: "100644", SHA256: shaOf("a\n"), Size: 2, GitBlob: blob("exp/data/a.csv")},
		{Path: "data/b.csv", Mode: "100644", SHA256: shaOf("b\n"), Size: 2, GitBlob: blob("exp/data/b.csv")},
		{Path: "link", Mode: "120000", SHA256: shaOf("data/a.csv"), Size: 10, GitBlob: blob("exp/link")},
		{Path: "run.py", Mode: "100644", SHA256: shaOf("print(1)\n"), Size: 9, GitBlob: blob("exp/run.py")},
		{Path: "tool.sh", Mode: "100755", SHA256: shaOf("#!/bin/sh\n"), Size: 10, GitBlob: blob("exp/tool.sh")},
	}
	if diff := cmp.Diff(want, m.Entries); diff != "" {
		t.Errorf("manifest (-want +got):\n%s", diff)
	}
	for _, e := range want {
		if ok, _ := s.Has(ctx, e.SHA256); !ok {
			t.Errorf("blob of %s not in the store", e.Path)
		}
	}
	raw1, _ := os.ReadFile(s.Root() + "/trees/" + string(id) + ".json")
	again, _ := m.Marshal()
	if !bytes.Equal(raw1, again) {
		t.Errorf("manifest bytes are not canonical:\n%s\n%s", raw1, again)
	}

	// A new commit changing one file re-reads only that file: the unchanged
	// subtree is reused by tree ID and known blobs by Git blob ID.
	if err := r.Write("exp/run.py", []byte("print(2)\n"), tree.ModeFile); err != nil {
		t.Fatal(err)
	}
	r.reads.Store(0)
	id2, err := ExportTree(ctx, s, r, "exp")
	if err != nil {
		t.Fatal(err)
	}
	if id2 == id {
		t.Fatalf("tree ID did not change after an edit")
	}
	if n := r.reads.Load(); n != 1 {
		t.Errorf("re-export read %d files, want 1 (only the changed one)", n)
	}
	// Exporting the same tree again reads nothing.
	r.reads.Store(0)
	if _, err := ExportTree(ctx, s, r, "exp"); err != nil {
		t.Fatal(err)
	}
	if n := r.reads.Load(); n != 0 {
		t.Errorf("exporting an exported tree read %d files, want 0", n)
	}
}

func TestExportTreeSymlinkWithoutLinkReader(t *testing.T) {
	m := tree.NewMemory()
	if err := m.Write("l", []byte("target"), tree.ModeSymlink); err != nil {
		t.Fatal(err)
	}
	_, err := ExportTree(context.Background(), newLocal(t), m, "")
	if err == nil || !strings.Contains(err.Error(), `"l" is a symlink`) {
		t.Errorf("ExportTree = %v, want an error naming the symlink", err)
	}
}

func TestManifestRejectsDuplicates(t *testing.T) {
	m := Manifest{Entries: []contract.File{{Path: "a"}, {Path: "a"}}}
	if _, err := m.Marshal(); err == nil {
		t.Errorf("Marshal of duplicate paths succeeded")
	}
}

func TestPutFileLinksOnlySingleNameFiles(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	dir := t.TempDir()
	single, shared, other := filepath.Join(dir, "single"), filepath.Join(dir, "shared"), filepath.Join(dir, "other-name")
	os.WriteFile(single, []byte("one name"), 0o644)
	os.WriteFile(shared, []byte("two names"), 0o644)
	if err := os.Link(shared, other); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{single, shared} {
		obj, err := s.PutFile(ctx, p, 0)
		if err != nil {
			t.Fatal(err)
		}
		fi, _ := os.Stat(p)
		objFi, _ := os.Stat(s.ObjectPath(obj.SHA256))
		linked := os.SameFile(fi, objFi)
		if want := p == single; linked != want {
			t.Errorf("%s: linked into the store = %v, want %v", p, linked, want)
		}
	}
	// Writing through the other name cannot change the stored object.
	os.WriteFile(other, []byte("changed!!"), 0o644)
	if rc, err := s.Open(ctx, shaOf("two names")); err != nil {
		t.Fatal(err)
	} else {
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != "two names" {
			t.Errorf("object changed to %q", b)
		}
	}
	if _, err := s.PutFile(ctx, single, 3); !errors.Is(err, ErrTooLarge) {
		t.Errorf("PutFile over the limit = %v", err)
	}
}
