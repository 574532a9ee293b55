package results

import (
	"maps"
	"path"
	"testing"

	"github.com/expsync/expsync/tree"
)

// BenchmarkMergeBatch merges a batch of 1,000 new run folders onto an
// empty head, as the last commit of a 1,000-run sweep does: with OwnBatch
// (the reconcile's own, freshly signed folders are not verified again) and
// with every folder verified by a stand-in that walks the folder as
// attest's check does (a listing and a read per file), so the overlay's
// listing cost shows.
//
//	go test -run '^$' -bench MergeBatch ./results
func BenchmarkMergeBatch(b *testing.B) {
	const n = 1000
	batch := map[string][]byte{}
	for i := range n {
		rec := aRun("sweep", map[string]any{"i": i}).record()
		f, err := BuildFolder(Layout{}, rec, []byte(`{"m": 1}`), nil, nil, DefaultLimits)
		if err != nil {
			b.Fatal(err)
		}
		f.SetEnvelope([]byte(`{"sig":"ours"}`))
		maps.Copy(batch, f.Files())
	}
	walk := func(r tree.Reader, dir, _ string) error {
		entries, err := r.ReadDir(dir)
		if err != nil {
			return err
		}
		for _, e := range entries {
			if _, err := r.ReadFile(path.Join(dir, e.Name), 0); err != nil {
				return err
			}
		}
		return nil
	}
	for _, c := range []struct {
		name string
		opts MergeOptions
	}{
		{"own-batch", MergeOptions{OwnBatch: true, Verify: walk}},
		{"verify-each", MergeOptions{Verify: walk}},
	} {
		b.Run(c.name, func(b *testing.B) {
			head := tree.NewMemory()
			for b.Loop() {
				if _, _, err := (Layout{}).Merge(head, batch, c.opts); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*n), "µs/folder")
		})
	}
}
