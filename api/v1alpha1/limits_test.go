package v1alpha1_test

import (
	"fmt"
	"math"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

// laughs is the billion-laughs document: nine levels of nine aliases of
// the level below, 9^9 nodes once expanded, a few hundred bytes written.
func laughs() string {
	var b strings.Builder
	b.WriteString("apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: a}\nspec:\n  image: host\n  command: [x]\n  params:\n")
	b.WriteString("    l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n")
	for i := 1; i <= 8; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*l%d, ", i-1), 9), ", ")
		fmt.Fprintf(&b, "    l%d: &l%d [%s]\n", i, i, refs)
	}
	return b.String()
}

// bigLaughs is a 24 KiB alias document: each level is an anchored list of
// as many aliases of the level below as fit.
func bigLaughs() string {
	var b strings.Builder
	b.WriteString("a0: &a0 [" + strings.TrimSuffix(strings.Repeat("lol,", 200), ",") + "]\n")
	for i := 1; b.Len() < 24<<10; i++ {
		refs := strings.TrimSuffix(strings.Repeat(fmt.Sprintf("*a%d,", i-1), 200), ",")
		fmt.Fprintf(&b, "a%d: &a%d [%s]\n", i, i, refs)
	}
	return b.String()
}

func TestLimitsRefuseHostileFiles(t *testing.T) {
	many := strings.Repeat("---\napiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {}\n", 101)
	cases := []struct {
		name string
		file string
		want string
	}{
		{"oversized file", "# " + strings.Repeat("x", 1<<20) + "\n", "experiments/a.yaml:1:1: file is 1048579 bytes; the limit is 1048576 (limits.maxFileBytes)"},
		// The 101st document starts with the "---" of line 401.
		{"too many documents", many, "experiments/a.yaml:401:1: more than 100 YAML documents in one file (limits.maxDocuments); split the file"},
		{"billion laughs", laughs(), "experiments/a.yaml:1:1: more than 100000 YAML nodes in one file with aliases expanded (limits.maxYAMLNodes)"},
		{"24 KiB alias bomb", bigLaughs(), "experiments/a.yaml:1:1: more than 100 YAML aliases in one file (limits.maxAliases); write the values out"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			files := map[string]string{"experiments/a.yaml": c.file}
			var before, after runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			start := time.Now()
			got := loadErrors(t, files, v1alpha1.ModeLocal)
			elapsed := time.Since(start)
			runtime.ReadMemStats(&after)
			if diff := cmp.Diff([]string{c.want}, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
			// Refused before any real work: the allocation bound is exact; the
			// time bound only catches an expansion (minutes), with room for a
			// CI machine at load ~190 (a 1 s bound is a coin toss there).
			if alloc := after.TotalAlloc - before.TotalAlloc; alloc > 16<<20 {
				t.Errorf("refusing allocated %d MiB", alloc>>20)
			}
			if elapsed > 10*time.Second {
				t.Errorf("refusing took %s", elapsed)
			}
		})
	}
}

func TestLimitsOnlyGoDown(t *testing.T) {
	builtin := v1alpha1.BuiltinLimits()
	op := builtin.Lower(v1alpha1.Limits{MaxRuns: 50, MaxFileBytes: 1 << 30, MaxTimeout: v1alpha1.Duration{Duration: time.Minute}})
	if op.MaxRuns != 50 || op.MaxFileBytes != builtin.MaxFileBytes || op.MaxTimeout.Duration != time.Minute {
		t.Errorf("Lower = %+v", op)
	}
	if op.MaxRetries != builtin.MaxRetries {
		t.Errorf("an unset field changed: %d", op.MaxRetries)
	}
	// The operator lowered maxRuns to 50: a repository asking for 60 is refused.
	files := map[string]string{
		"expsync.yaml":       "limits:\n  maxRuns: 60\n",
		"experiments/a.yaml": experiment("a", valid),
	}
	_, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{Limits: v1alpha1.Limits{MaxRuns: 50}})
	want := "expsync.yaml:2:12: limits.maxRuns: 60 is above the operator's limit 50; a repository can only lower limits"
	if err == nil || err.Error() != want {
		t.Errorf("Load = %v, want %s", err, want)
	}
}

// TestErrorsAreBounded: a file of 30,000 mistakes costs no more than a
// file of 200.
func TestErrorsAreBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString(experiment("a", valid))
	for i := 0; i < 30_000; i++ {
		fmt.Fprintf(&b, "  unknownfield%d: 1\n", i)
	}
	file := b.String()
	var got []string
	load := fastest(3, func() {
		got = loadErrors(t, map[string]string{"experiments/a.yaml": file}, v1alpha1.ModeLocal)
	})
	if len(got) != v1alpha1.MaxErrors+1 {
		t.Fatalf("%d errors, want %d", len(got), v1alpha1.MaxErrors+1)
	}
	if want := "experiments/a.yaml:208:3: more than 200 problems; stopped checking here"; got[len(got)-1] != want {
		t.Errorf("last error %q, want %q", got[len(got)-1], want)
	}
	// The peer, side by side: parsing the same bytes into YAML nodes, which
	// any loader must do. Past MaxErrors the loader must not keep working
	// per mistake (finding the closest field name for 30,000 unknown keys
	// made it ~17x the parse; bounded it is ~2x). A ratio, not a wall-clock
	// bound, so a loaded machine slows both sides alike.
	parse := fastest(3, func() {
		var n yaml.Node
		if err := yaml.Unmarshal([]byte(file), &n); err != nil {
			t.Fatal(err)
		}
	})
	if ratio := float64(load) / float64(parse); ratio > 6 {
		t.Errorf("loading took %s, %.1fx parsing the same file (%s); want at most 6x", load, ratio, parse)
	}
}

// fastest returns the shortest of n timings of f: the least disturbed by
// the rest of the machine.
func fastest(n int, f func()) time.Duration {
	best := time.Duration(math.MaxInt64)
	for range n {
		start := time.Now()
		f()
		best = min(best, time.Since(start))
	}
	return best
}

func TestMaxTotalBytes(t *testing.T) {
	files := map[string]string{"expsync.yaml": "limits: {maxTotalBytes: 300}\n"}
	for _, n := range []string{"a", "b", "c"} {
		files["experiments/"+n+".yaml"] = experiment(n, valid) // 122 bytes each
	}
	got := loadErrors(t, files, v1alpha1.ModeLocal)
	want := []string{"experiments/c.yaml:1:1: the repository's YAML files exceed 300 bytes together (limits.maxTotalBytes); not read"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
