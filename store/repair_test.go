package store

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"

	"github.com/expsync/expsync/tree"
)

// corrupt writes through an object's read-only inode, as a run running as
// root can through a hard link in its work folder.
func corrupt(t *testing.T, s *Local, sha string, data []byte) {
	t.Helper()
	p := s.ObjectPath(sha)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestPutRepairsAnObjectChangedBehindTheStore(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		content []byte
		corrupt []byte
		viaFile bool
	}{
		{"small, same size", []byte("original\n"), []byte("ORIGINAL\n"), false},
		{"small, appended", []byte("original\n"), []byte("original\nmore\n"), false},
		{"large, appended", bytes.Repeat([]byte("x"), 100<<10), bytes.Repeat([]byte("x"), 101<<10), false},
		{"large via PutFile, appended", bytes.Repeat([]byte("y"), 100<<10), bytes.Repeat([]byte("y"), 101<<10), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLocal(t)
			obj, err := s.PutBytes(ctx, tc.content)
			if err != nil {
				t.Fatal(err)
			}
			corrupt(t, s, obj.SHA256, tc.corrupt)
			if tc.viaFile {
				p := t.TempDir() + "/out"
				os.WriteFile(p, tc.content, 0o644)
				_, err = s.PutFile(ctx, p, 0)
			} else {
				_, err = s.Put(ctx, bytes.NewReader(tc.content), "")
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := os.ReadFile(s.ObjectPath(obj.SHA256))
			if err != nil || !bytes.Equal(got, tc.content) {
				t.Errorf("object %s holds %d bytes (err %v) after storing its %d bytes again", obj.SHA256[:12], len(got), err, len(tc.content))
			}
		})
	}
}

func TestDropRestoresSmallObjectsFromMemory(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	small, _ := s.PutBytes(ctx, []byte("small\n"))
	large, _ := s.PutBytes(ctx, []byte(strings.Repeat("L", 100<<10)))
	corrupt(t, s, small.SHA256, []byte("SMALL\n"))
	corrupt(t, s, large.SHA256, []byte("changed"))
	s.Drop(small.SHA256)
	s.Drop(large.SHA256)
	if got, err := os.ReadFile(s.ObjectPath(small.SHA256)); err != nil || string(got) != "small\n" {
		t.Errorf("small object after Drop: %q, %v; want its original bytes", got, err)
	}
	if ok, _ := s.Has(ctx, large.SHA256); ok {
		t.Errorf("a large changed object is still served under its digest")
	}
}

func TestLinkToRefusesAChangedSmallObject(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	obj, _ := s.PutBytes(ctx, []byte("#!/bin/sh\necho hi\n"))
	// A fresh store value has no bytes in memory, as in a new process.
	s2, err := OpenLocal(s.Root())
	if err != nil {
		t.Fatal(err)
	}
	corrupt(t, s2, obj.SHA256, []byte("#!/bin/sh\nrm -rf\n"))
	_, err = s2.LinkTo(ctx, obj.SHA256, t.TempDir()+"/tool", true)
	if err == nil || !strings.Contains(err.Error(), "changed behind the store's back") {
		t.Fatalf("LinkTo of a changed executable: %v", err)
	}
	if ok, _ := s2.Has(ctx, obj.SHA256); ok {
		t.Errorf("the changed object is still in the store")
	}
}

// TestExportTreeRestoresATruncatedObject: an object cut short (a power cut
// after its rename, a full disk) that a new commit's tree reuses by Git
// blob ID was trusted at its current size: the new manifest recorded the
// short size, the runner's size check passed, and the run used the broken
// file — its result attested as the genuine context's. The blob's recorded
// size catches it: the file is read from the tree again and the object
// restored.
func TestExportTreeRestoresATruncatedObject(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		name    string
		content string
	}{
		{"small", "print('the whole script')\n"},
		{"large", strings.Repeat("x = 1\n", 20000)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newLocal(t)
			r := newLinkTree(t, map[string]string{"exp/run.py": tc.content, "exp/a.txt": "a\n"})
			if _, err := ExportTree(ctx, s, r, "exp"); err != nil {
				t.Fatal(err)
			}
			corrupt(t, s, shaOf(tc.content), []byte(tc.content[:10]))
			// The next commit changes another file; run.py's blob is known.
			if err := r.Write("exp/a.txt", []byte("b\n"), tree.ModeFile); err != nil {
				t.Fatal(err)
			}
			id, err := ExportTree(ctx, s, r, "exp")
			if err != nil {
				t.Fatal(err)
			}
			m, err := s.Tree(ctx, string(id))
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range m.Entries {
				if e.Path == "run.py" && e.Size != int64(len(tc.content)) {
					t.Errorf("manifest records run.py with %d bytes, want %d", e.Size, len(tc.content))
				}
			}
			if got, _ := os.ReadFile(s.ObjectPath(shaOf(tc.content))); string(got) != tc.content {
				t.Errorf("object holds %d bytes after the export, want %d", len(got), len(tc.content))
			}
		})
	}
}
