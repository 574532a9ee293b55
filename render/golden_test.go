package render

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

var update = flag.Bool("update", false, "rewrite testdata/render/*/expected from the current rendering")

// goldenJobOptions are the options of every golden case, so expected files
// only change when rendering does.
var goldenJobOptions = JobOptions{
	Namespace:   "lab",
	RunnerImage: "ghcr.io/expsync/expsync@sha256:1111111111111111111111111111111111111111111111111111111111111111",
	Repository:  "https://git.example/lab/experiments.git",
	Commit:      "0123456789abcdef0123456789abcdef01234567",
	StoreClaim:  "expsync-store",
}

const goldenStoreURL = "s3://expsync-store/lab"

// renderCase plans the repository in dir in kubernetes mode and renders it.
func renderCase(t testing.TB, dir string) []JobObjects {
	t.Helper()
	r, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	plan, err := Plan(r, PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: goldenStoreURL})
	if err != nil {
		t.Fatalf("plan %s:\n%v", dir, err)
	}
	objs, err := RenderJobs(plan.Runs, goldenJobOptions)
	if err != nil {
		t.Fatalf("render %s: %v", dir, err)
	}
	return objs
}

// TestRenderGolden renders each testdata/render/<case>/input repository and
// compares the YAML stream with <case>/expected/jobs.yaml. After an intended
// change: go test ./render -run TestRenderGolden -update, and review the diff.
func TestRenderGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("..", "testdata", "render", "*"))
	if err != nil {
		t.Fatal(err)
	}
	if len(cases) < 4 {
		t.Fatalf("found %d golden cases, want at least 4", len(cases))
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			objs := renderCase(t, filepath.Join(dir, "input"))
			if len(objs) == 0 {
				t.Fatal("no Jobs rendered")
			}
			for _, o := range objs {
				checkObjects(t, o)
			}
			var got bytes.Buffer
			if err := WriteYAML(&got, objs); err != nil {
				t.Fatal(err)
			}
			path := filepath.Join(dir, "expected", "jobs.yaml")
			if *update {
				if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(path, got.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if diff := cmp.Diff(string(want), got.String()); diff != "" {
				t.Errorf("%s differs (-want +got); if intended, rerun with -update:\n%s", path, diff)
			}
		})
	}
}
