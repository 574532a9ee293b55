package v1alpha1_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// reproducibleSpec is valid plus outputs and metrics (lines 8 to 9), so
// spec.reproduce starts at line 10.
const reproducibleSpec = valid +
	"  outputs: [out/estimate.json, out/plots/]\n" +
	"  metrics: out/metrics.json\n"

func TestReproduceValidation(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string
	}{{
		name: "valid: a file, a file inside a folder output, two tolerances",
		doc: experiment("a", reproducibleSpec+"  reproduce:\n    exact: [out/estimate.json, out/plots/a.svg]\n"+
			"    metrics:\n      - {name: loss, rel: 0.01}\n      - {name: pi, abs: 1e-9, rel: 0}\n"),
	}, {
		name: "an empty exact list is allowed (no output must match)",
		doc:  experiment("a", reproducibleSpec+"  reproduce:\n    exact: []\n"),
	}, {
		name: "exact names undeclared, escaping and repeated outputs",
		doc:  experiment("a", reproducibleSpec+"  reproduce:\n    exact: [out/other.json, ../x, out/estimate.json, out/estimate.json, out/estimate.json/]\n"),
		want: []string{
			`experiments/a.yaml:11:13: spec.reproduce.exact[0]: "out/other.json" is not a declared output (spec.outputs: out/estimate.json, out/plots/); list outputs, or files and folders inside a folder output`,
			`experiments/a.yaml:11:29: spec.reproduce.exact[1]: "../x" must be a relative path that stays inside its folder (no '..', not absolute)`,
			`experiments/a.yaml:11:54: spec.reproduce.exact[3]: "out/estimate.json" is listed twice (spec.reproduce.exact[2])`,
			`experiments/a.yaml:11:73: spec.reproduce.exact[4]: "out/estimate.json/" is not a declared output (spec.outputs: out/estimate.json, out/plots/); list outputs, or files and folders inside a folder output`,
		},
	}, {
		name: "tolerances: missing name, negative, none given, duplicate, not a number",
		doc: experiment("a", reproducibleSpec+"  reproduce:\n    metrics:\n      - {abs: 1}\n      - {name: loss, abs: -1}\n"+
			"      - {name: acc}\n      - {name: pi, rel: 0.1}\n      - {name: pi, rel: 0.2}\n      - {name: e, abs: lots}\n      - {name: f, rel: .inf}\n"),
		want: []string{
			`experiments/a.yaml:12:9: spec.reproduce.metrics[0]: name: missing; name a key of the metrics file (spec.metrics) this tolerance applies to`,
			`experiments/a.yaml:13:27: spec.reproduce.metrics[1].abs: -1 is negative; a tolerance is a distance (0 or more)`,
			`experiments/a.yaml:14:9: spec.reproduce.metrics[2]: give abs (the largest difference allowed) or rel (a fraction of the attested value), or both; a metric without a tolerance must be equal`,
			`experiments/a.yaml:16:16: spec.reproduce.metrics[4].name: "pi" already has a tolerance (spec.reproduce.metrics[3]); give each metric one`,
			`experiments/a.yaml:17:24: spec.reproduce.metrics[5].abs: must be a number, got str "lots"`,
			`experiments/a.yaml:18:24: spec.reproduce.metrics[6].rel: must be a finite number, got .inf`,
		},
	}, {
		name: "tolerances without a metrics file; unknown field",
		doc:  experiment("a", valid+"  reproduce:\n    metrics: [{name: loss, abs: 1}]\n    exactly: []\n"),
		want: []string{
			`experiments/a.yaml:9:14: spec.reproduce.metrics: metric tolerances need metrics: set spec.metrics to the JSON file of numbers each run writes`,
			`experiments/a.yaml:10:5: spec.reproduce: unknown field "exactly"; did you mean "exact"?`,
		},
	}}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := loadErrors(t, map[string]string{"experiments/a.yaml": tc.doc}, v1alpha1.ModeLocal)
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

// TestReproduceIsNotInTheRunID: tolerances are how a reproduction is
// judged, not what a run computes: adding, changing or removing them moves
// no run ID.
func TestReproduceIsNotInTheRunID(t *testing.T) {
	ids := func(spec string) []string {
		t.Helper()
		plan, err := render.Plan(tree.MemoryOf(map[string]string{"experiments/a.yaml": experiment("a", spec)}), render.PlanOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, r := range plan.Runs {
			out = append(out, r.ID)
		}
		return out
	}
	base := ids(reproducibleSpec)
	for _, extra := range []string{
		"  reproduce: {exact: [out/estimate.json]}\n",
		"  reproduce: {exact: [], metrics: [{name: pi, abs: 0.5}]}\n",
	} {
		if diff := cmp.Diff(base, ids(reproducibleSpec+extra)); diff != "" {
			t.Errorf("spec.reproduce moved run IDs:\n%s\n%s", extra, diff)
		}
	}
}

// TestReproduceFromTemplate: spec.reproduce merges like any mapping; its
// lists replace the template's.
func TestReproduceFromTemplate(t *testing.T) {
	files := map[string]string{
		"templates/t.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n" +
			"  reproduce:\n    exact: [out/estimate.json]\n    metrics: [{name: pi, abs: 1}]\n",
		"experiments/a.yaml": experiment("a", reproducibleSpec+"  template: templates/t.yaml\n  reproduce:\n    metrics: [{name: loss, rel: 0.5}]\n"),
	}
	repo, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := repo.Experiments[0].Spec.Reproduce
	want := &v1alpha1.Reproduce{Exact: []string{"out/estimate.json"}, Metrics: []v1alpha1.MetricTolerance{{Name: "loss", Rel: 0.5}}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("merged reproduce (-want +got):\n%s", diff)
	}
}

// TestLoadExperimentFile reads the tolerances of one file and its template
// without the rest of the repository (no context folder, no expsync.yaml).
func TestLoadExperimentFile(t *testing.T) {
	files := map[string]string{
		"templates/t.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  reproduce: {metrics: [{name: pi, abs: 1}]}\n",
		"experiments/a.yaml": experiment("a", reproducibleSpec+"  template: templates/t.yaml\n  context: code/a\n") + "---\n" +
			experiment("b", reproducibleSpec+"  reproduce: {exact: [nope]}\n"),
	}
	loaded, err := v1alpha1.LoadExperimentFile(tree.MemoryOf(files), "experiments/a.yaml", v1alpha1.LoadOptions{})
	var list v1alpha1.ErrorList
	if !errors.As(err, &list) || len(list) != 1 || !strings.Contains(list[0].Error(), `spec.reproduce.exact[0]: "nope" is not a declared output`) {
		t.Fatalf("want one error about b's exact, got %v", err)
	}
	if len(loaded) != 2 || loaded[0].Metadata.Name != "a" || !loaded[0].Valid() || loaded[1].Valid() {
		t.Fatalf("loaded %d experiments", len(loaded))
	}
	want := &v1alpha1.Reproduce{Metrics: []v1alpha1.MetricTolerance{{Name: "pi", Abs: 1}}}
	if diff := cmp.Diff(want, loaded[0].Spec.Reproduce); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
