package store

import (
	"bytes"
	"context"
	"errors"
	"os"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
)

// TestVerifyCatchesACorruptObject: Verify rehashes an object once per
// process and file state — a truncated or replaced object is caught even
// after it was verified, and dropped; a new process restores nothing from
// memory, so the caller stores the bytes again.
func TestVerifyCatchesACorruptObject(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	data := bytes.Repeat([]byte("sample\n"), 20000) // over smallMax: never kept in memory
	s, err := OpenLocal(dir)
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.PutBytes(ctx, data)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, obj.SHA256); err != nil {
		t.Fatalf("intact object: %v", err)
	}
	path := s.ObjectPath(obj.SHA256)
	rewrite := func(b []byte, mtime time.Time) {
		t.Helper()
		if err := os.Chmod(path, 0o644); err != nil {
			t.Fatal(err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_TRUNC, 0)
		if err != nil {
			t.Fatal(err)
		}
		f.Write(b)
		f.Close()
		if !mtime.IsZero() {
			os.Chtimes(path, mtime, mtime)
		}
	}
	// Verified once: a file whose identity is unchanged is not rehashed
	// (bytes flipped in place keeping size and times pass until the next
	// process — the documented price of a stat per run).
	fi, _ := os.Stat(path)
	flipped := bytes.Clone(data)
	flipped[0] = 'S'
	rewrite(flipped, fi.ModTime())
	if err := s.Verify(ctx, obj.SHA256); err != nil {
		t.Errorf("same inode, size and mtime was rehashed: %v", err)
	}
	// Cut short: caught, dropped.
	rewrite(data[:100], time.Time{})
	var mm *MismatchError
	if err := s.Verify(ctx, obj.SHA256); !errors.As(err, &mm) || mm.Want != obj.SHA256 || mm.Got != contract.SHA256Hex(data[:100]) {
		t.Fatalf("truncated object: %v, want a mismatch naming both digests", err)
	}
	if err := s.Verify(ctx, obj.SHA256); !errors.Is(err, ErrNotFound) {
		t.Errorf("dropped object: %v, want not found", err)
	}
	// Stored again, it verifies; a new process rehashes it (and the
	// flipped bytes a previous process let pass are caught).
	if _, err := s.PutBytes(ctx, data); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, obj.SHA256); err != nil {
		t.Errorf("stored again: %v", err)
	}
	fi, _ = os.Stat(path)
	rewrite(flipped, fi.ModTime())
	s2, _ := OpenLocal(dir)
	if err := s2.Verify(ctx, obj.SHA256); !errors.As(err, &mm) {
		t.Errorf("new process: %v, want a mismatch", err)
	}
}

// TestVerifyRestoresASmallObjectFromMemory: an object this process holds
// in memory (verified when cached) is rewritten rather than dropped.
func TestVerifyRestoresASmallObjectFromMemory(t *testing.T) {
	ctx := context.Background()
	s, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.PutBytes(ctx, []byte("small\n"))
	if err != nil {
		t.Fatal(err)
	}
	path := s.ObjectPath(obj.SHA256)
	os.Chmod(path, 0o644)
	if err := os.WriteFile(path, []byte("sm"), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(ctx, obj.SHA256); err != nil {
		t.Errorf("Verify: %v, want the object restored from memory", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "small\n" {
		t.Errorf("object holds %q", b)
	}
}

// Runs starting together verify a shared input at once (run with -race).
func TestVerifyConcurrently(t *testing.T) {
	ctx := context.Background()
	s, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	obj, err := s.PutBytes(ctx, bytes.Repeat([]byte("x"), 1<<20))
	if err != nil {
		t.Fatal(err)
	}
	fresh, _ := OpenLocal(s.Root())
	before := objectsHashed.Load()
	errs := make(chan error, 8)
	for range 8 {
		go func() { errs <- fresh.Verify(ctx, obj.SHA256) }()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if n := objectsHashed.Load() - before; n != 1 {
		t.Errorf("8 concurrent Verify calls hashed the object %d times, want once", n)
	}
}
