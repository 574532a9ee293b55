package results

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/expsync/expsync/tree"
)

// TestOverlayListsLikeScanningChanges compares the overlay's indexed
// listings and stats with the scan of every change it replaced (kept below
// as the reference), over random bases and change sets (new folders,
// replaced and deleted files).
func TestOverlayListsLikeScanningChanges(t *testing.T) {
	// results/<experiment>/<run>/<file>, and files beside the folders:
	// what Merge overlays. A path is never a file in one tree and a folder
	// in the other.
	randomPath := func(r *rand.Rand) string {
		parts := []string{[]string{"a", "b"}[r.IntN(2)], []string{"c", "d", "README.md"}[r.IntN(3)]}
		if parts[1] != "README.md" {
			parts = append(parts, []string{"x", "y", "z"}[r.IntN(3)])
		}
		return strings.Join(parts, "/")
	}
	ignoreHash := cmpopts.IgnoreFields(tree.Entry{}, "Hash")
	for seed := range uint64(300) {
		r := rand.New(rand.NewPCG(seed, 1))
		base := tree.NewMemory()
		for range 8 {
			p := randomPath(r)
			data := []byte(fmt.Sprint(r.IntN(100)))
			// A path cannot be a file and a folder at once: skip clashes.
			_ = base.Write(p, data, tree.ModeFile)
		}
		changes := Changes{}
		for range 6 {
			p := randomPath(r)
			if r.IntN(3) == 0 {
				changes[p] = nil
				continue
			}
			changes[p] = []byte(fmt.Sprint(r.IntN(100)))
		}
		o, applied := newOverlay(base, changes), scanningOverlay{base, changes}
		for _, dir := range []string{"", "a", "b", "a/c", "a/d", "b/c", "b/d", "e"} {
			want, wantErr := applied.ReadDir(dir)
			got, gotErr := o.ReadDir(dir)
			if (wantErr == nil) != (gotErr == nil) && len(want)+len(got) > 0 {
				t.Fatalf("seed %d: ReadDir(%q) error %v, want %v (changes %q)", seed, dir, gotErr, wantErr, keys(changes))
			}
			if diff := cmp.Diff(want, got, ignoreHash, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("seed %d: ReadDir(%q) (-scan +index):\n%s\nchanges %q", seed, dir, diff, keys(changes))
			}
			wantE, wantErr := applied.Stat(dir)
			gotE, gotErr := o.Stat(dir)
			if wantErr == nil && gotErr == nil {
				if diff := cmp.Diff(wantE.IsDir(), gotE.IsDir()); diff != "" {
					t.Fatalf("seed %d: Stat(%q) is a folder (-scan +index):\n%s", seed, dir, diff)
				}
			}
		}
	}
}

func keys(c Changes) []string {
	var out []string
	for k, v := range c {
		out = append(out, fmt.Sprintf("%s=%v", k, v != nil))
	}
	return out
}

// scanningOverlay is the overlay as it was before it indexed its changes:
// every Stat and ReadDir scans all changes.
type scanningOverlay struct {
	base    tree.Reader
	changes Changes
}

func (o scanningOverlay) Stat(p string) (tree.Entry, error) {
	if data, ok := o.changes[p]; ok {
		if data == nil {
			return tree.Entry{}, fmt.Errorf("%s: %w", p, tree.ErrNotExist)
		}
		return tree.Entry{Name: path.Base(p), Mode: tree.ModeFile, Size: int64(len(data))}, nil
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	for c, data := range o.changes {
		if data != nil && strings.HasPrefix(c, prefix) {
			return tree.Entry{Name: path.Base(p), Mode: tree.ModeDir}, nil
		}
	}
	return o.base.Stat(p)
}

func (o scanningOverlay) ReadDir(p string) ([]tree.Entry, error) {
	base, err := o.base.ReadDir(p)
	if err != nil && !errors.Is(err, tree.ErrNotExist) {
		return nil, err
	}
	byName := map[string]tree.Entry{}
	for _, e := range base {
		byName[e.Name] = e
	}
	prefix := strings.TrimSuffix(p, "/") + "/"
	if p == "" || p == "." {
		prefix = ""
	}
	for c, data := range o.changes {
		if !strings.HasPrefix(c, prefix) {
			continue
		}
		rest := strings.TrimPrefix(c, prefix)
		name, _, isDir := strings.Cut(rest, "/")
		switch {
		case isDir && data != nil:
			byName[name] = tree.Entry{Name: name, Mode: tree.ModeDir}
		case !isDir && data != nil:
			byName[name] = tree.Entry{Name: name, Mode: tree.ModeFile, Size: int64(len(data))}
		case !isDir && data == nil:
			delete(byName, name)
		}
	}
	if len(byName) == 0 && err != nil {
		return nil, err
	}
	out := make([]tree.Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
