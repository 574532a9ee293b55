package v1alpha1_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

func hugeSweep() string {
	values := make([]string, 1000)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	list := "[" + strings.Join(values, ",") + "]"
	// 1000^3 = 10^9 points: refused by arithmetic, never expanded.
	return experiment("a", valid+"  sweep:\n    matrix: {a: "+list+", b: "+list+", c: "+list+"}\n")
}

// BenchmarkRefuse measures how fast each limit class refuses bad input; the
// issue's budget is 50 ms per refusal. ms/op is reported for reading.
func BenchmarkRefuse(b *testing.B) {
	many := strings.Repeat("---\napiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {}\n", 101)
	cases := []struct {
		name, file, want string
	}{
		{"oversized-file", "# " + strings.Repeat("x", 4<<20) + "\n", "limits.maxFileBytes"},
		{"too-many-documents", many, "limits.maxDocuments"},
		{"billion-laughs", laughs(), "limits.maxYAMLNodes"},
		{"alias-bomb-24KiB", bigLaughs(), "limits.maxAliases"},
		{"sweep-1e9-points", hugeSweep(), "limits.maxRunsPerExperiment"},
	}
	for _, c := range cases {
		m := tree.MemoryOf(map[string]string{"experiments/a.yaml": c.file})
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for i := 0; i < b.N; i++ {
				_, err := v1alpha1.Load(m, v1alpha1.LoadOptions{})
				if err == nil || !strings.Contains(err.Error(), c.want) {
					b.Fatalf("Load = %v, want a %s error", err, c.want)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
		})
	}
	// The working-folder reader refuses an oversized file from its size; it
	// still hashes it once for the tree, as Git would.
	dir := b.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "experiments"), 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "experiments", "a.yaml"), []byte("# "+strings.Repeat("x", 4<<20)), 0o644); err != nil {
		b.Fatal(err)
	}
	b.Run("oversized-file-working-folder", func(b *testing.B) {
		b.ReportAllocs()
		for i := 0; i < b.N; i++ {
			d, err := tree.NewDir(dir) // a fresh Dir: nothing cached
			if err != nil {
				b.Fatal(err)
			}
			_, err = v1alpha1.Load(d, v1alpha1.LoadOptions{})
			d.Close()
			if err == nil || !strings.Contains(err.Error(), "limits.maxFileBytes") {
				b.Fatalf("Load = %v", err)
			}
		}
		b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/op")
	})
}
