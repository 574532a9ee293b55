package kube

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// TestPrefixLifecycle: a prefix is made empty and writable by any user,
// listed, and removed without following the symlinks its pod planted.
func TestPrefixLifecycle(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	st, err := NewVolumeStorage("store", dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PreparePrefix(ctx, testRunID); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(st.PrefixDir(testRunID))
	if err != nil || fi.Mode().Perm() != 0o777 {
		t.Fatalf("prefix %v, mode %v: want a folder any pod user can write", err, fi.Mode())
	}
	// What a hostile pod leaves: links to the controller's results and to
	// another run's prefix, and a file of its own.
	other := filepath.Join(st.PrefixDir(otherRunID), "keep.txt")
	if err := os.MkdirAll(filepath.Dir(other), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(other, []byte("keep"), 0o644); err != nil {
		t.Fatal(err)
	}
	prefix := st.PrefixDir(testRunID)
	for name, target := range map[string]string{"results": filepath.Join(dir, resultsSubPath), "other": filepath.Dir(other), "up": ".."} {
		if err := os.Symlink(target, filepath.Join(prefix, name)); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(prefix, "mine"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	list, err := st.Prefixes(ctx)
	if err != nil || len(list) != 2 {
		t.Fatalf("Prefixes = %v, %v; want both runs", list, err)
	}
	// Preparing again (a run executed anew) empties it.
	if err := st.PreparePrefix(ctx, testRunID); err != nil {
		t.Fatal(err)
	}
	if entries, _ := os.ReadDir(prefix); len(entries) != 0 {
		t.Errorf("a prepared prefix holds %d entries", len(entries))
	}
	if err := os.Symlink(filepath.Dir(other), filepath.Join(prefix, "other")); err != nil {
		t.Fatal(err)
	}
	if err := st.RemovePrefix(ctx, testRunID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(prefix); !os.IsNotExist(err) {
		t.Errorf("prefix still there: %v", err)
	}
	if b, err := os.ReadFile(other); err != nil || string(b) != "keep" {
		t.Errorf("another run's prefix was touched: %q, %v", b, err)
	}
	if _, err := os.Stat(filepath.Join(dir, resultsSubPath, "sha256")); err != nil {
		t.Errorf("the results store was touched: %v", err)
	}
	if err := st.RemovePrefix(ctx, "../../etc"); err == nil {
		t.Errorf("RemovePrefix took a path for a run ID")
	}
}
