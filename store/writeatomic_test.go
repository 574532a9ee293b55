package store

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWriteAtomicReplacesAndLeavesNoTemp writes one file (as tree
// manifests and Git blob links are written) by both paths (an unnamed file
// linked in, and a named temp file renamed into place when the name exists
// or O_TMPFILE is not available): the last write wins whole, modes are the
// store's, and nothing is left in tmp/ or beside the file.
func TestWriteAtomicReplacesAndLeavesNoTemp(t *testing.T) {
	for _, unnamed := range []bool{true, false} {
		t.Run(map[bool]string{true: "unnamed", false: "temp-rename"}[unnamed], func(t *testing.T) {
			s, err := OpenLocal(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			s.noTmpfile.Store(!unnamed)
			path := filepath.Join(s.root, "trees", "ab", "0123456789abcdef.json")
			for i, body := range []string{`{"first":1}`, `{"second":22}`, `{"third":333}`} {
				if err := s.writeAtomic(path, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				got, err := os.ReadFile(path)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(body, string(got)); diff != "" {
					t.Errorf("file after write %d (-want +got):\n%s", i, diff)
				}
			}
			if unnamed && s.noTmpfile.Load() {
				t.Errorf("the O_TMPFILE write fell back to a named temp file on %s", s.root)
			}
			fi, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode().Perm()&0o600 != 0o600 || fi.Mode().Perm()&0o022 != 0 {
				t.Errorf("file mode %v; want rw for the owner, not writable by others", fi.Mode().Perm())
			}
			var names []string
			for _, dir := range []string{filepath.Join(s.root, "tmp"), filepath.Dir(path)} {
				entries, err := os.ReadDir(dir)
				if err != nil {
					t.Fatal(err)
				}
				for _, e := range entries {
					names = append(names, e.Name())
				}
			}
			if diff := cmp.Diff([]string{filepath.Base(path)}, names); diff != "" {
				t.Errorf("files in tmp/ and the file's folder (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConcurrentRunFileWritersNeverShowPart has readers racing writers of
// one run file: a reader sees ErrNotFound or one whole version, never a
// part.
func TestConcurrentRunFileWritersNeverShowPart(t *testing.T) {
	s, err := OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	id := "fedcba9876543210fedcba9876543210"
	versions := map[string]bool{}
	var bodies [][]byte
	for _, c := range "abcd" {
		b := make([]byte, 64<<10)
		for i := range b {
			b[i] = byte(c)
		}
		bodies = append(bodies, b)
		versions[string(b)] = true
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if err := s.PutRunFile(ctx, id, "result.json", bodies[w]); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	for {
		select {
		case <-done:
			return
		default:
		}
		got, err := s.RunFile(ctx, id, "result.json")
		if err == nil && !versions[string(got)] {
			t.Fatalf("reader saw %d bytes that are no whole version", len(got))
		}
	}
}
