package v1alpha1_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

// sweptSpec is valid plus metrics, fixed params and a sweep over two
// numeric parameters and a string one (lines 6 to 12), so plots start at
// line 12.
const sweptSpec = valid +
	"  metrics: m.json\n" +
	"  params: {steps: 10}\n" +
	"  sweep:\n" +
	"    matrix: {lr: [0.1, 0.01], seed: [1, 2]}\n" +
	"    include: [{lr: 1, opt: adam}]\n"

func TestPlotsValidation(t *testing.T) {
	cases := []struct {
		name string
		doc  string
		want []string
	}{{
		name: "valid, one per metric",
		doc:  experiment("a", sweptSpec+"  plots:\n    - {metric: loss, against: lr}\n    - {metric: acc, against: seed}\n"),
	}, {
		name: "against names a parameter that is not swept, with a hint",
		doc:  experiment("a", sweptSpec+"  plots:\n    - {metric: loss, against: lrr}\n    - {metric: loss, against: steps}\n    - {metric: loss, against: batch}\n"),
		want: []string{
			`experiments/a.yaml:14:31: spec.plots[0].against: "lrr" is not a swept parameter; did you mean "lr"?`,
			`experiments/a.yaml:15:31: spec.plots[1].against: "steps" is fixed (spec.params), not swept; plot against one of lr, opt, seed`,
			`experiments/a.yaml:16:31: spec.plots[2].against: "batch" is not a swept parameter; allowed: lr, opt, seed`,
		},
	}, {
		name: "x axis must be numeric",
		doc:  experiment("a", sweptSpec+"  plots:\n    - {metric: loss, against: opt}\n"),
		want: []string{
			`experiments/a.yaml:14:31: spec.plots[0].against: parameter "opt" takes the value "adam", not a number; the x axis needs numbers (plot against another parameter, or sweep numbers)`,
		},
	}, {
		name: "metric missing, implausible, duplicate; against missing with several swept",
		doc: experiment("a", sweptSpec+"  plots:\n    - {against: lr}\n    - {metric: \" loss\", against: lr}\n"+
			"    - {metric: loss}\n    - {metric: acc, against: lr}\n    - {metric: acc, against: lr}\n"),
		want: []string{
			`experiments/a.yaml:14:7: spec.plots[0]: metric: missing; name a key of the metrics file (spec.metrics) to plot`,
			`experiments/a.yaml:15:16: spec.plots[1].metric: " loss" must be a key of the metrics file: printable text without leading or trailing spaces`,
			`experiments/a.yaml:16:7: spec.plots[2]: against: missing; the sweep varies lr, opt, seed, name the one for the x axis`,
			`experiments/a.yaml:18:7: spec.plots[4]: plots "acc" against "lr" like spec.plots[3]; remove one`,
		},
	}, {
		name: "no sweep, no metrics file",
		doc:  experiment("a", valid+"  plots:\n    - {metric: loss, against: lr}\n"),
		want: []string{
			`experiments/a.yaml:9:5: spec.plots: plots need metrics: set spec.metrics to the JSON file of numbers each run writes`,
			`experiments/a.yaml:9:7: spec.plots[0]: plots need a sweep: add spec.sweep (matrix or include) varying the parameter to plot against, or remove spec.plots`,
		},
	}, {
		name: "unknown field and wrong type",
		doc:  experiment("a", sweptSpec+"  plots:\n    - {metric: loss, x: lr}\n  \n"),
		want: []string{
			`experiments/a.yaml:14:22: spec.plots[0]: unknown field "x"; allowed: against, metric`,
		},
	}, {
		name: "plots is a mapping, not a list",
		doc:  experiment("a", sweptSpec+"  plots: {metric: loss, against: lr}\n"),
		want: []string{`experiments/a.yaml:13:10: spec.plots: must be a list, got a mapping`},
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

// TestPlotsAgainstDefaultsToTheOnlySweptParameter: a sweep over one
// parameter needs no against; a template's plots are inherited and an
// experiment's replace them.
func TestPlotsAgainstDefaultsToTheOnlySweptParameter(t *testing.T) {
	files := map[string]string{
		"experiments/a.yaml": experiment("a", valid+"  metrics: m.json\n  sweep: {matrix: {samples: [10, 100]}}\n  plots: [{metric: err}]\n"),
		"experiments/b.yaml": experiment("b", "  template: t.yaml\n  sweep: {matrix: {n: [1, 2]}}\n"),
		"experiments/c.yaml": experiment("c", "  template: t.yaml\n  sweep: {matrix: {n: [1, 2]}}\n  plots: [{metric: acc, against: n}]\n"),
		"t.yaml":             "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n" + valid + "  metrics: m.json\n  plots: [{metric: loss}]\n",
	}
	repo, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{Mode: v1alpha1.ModeLocal})
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	got := map[string][]v1alpha1.Plot{}
	for _, e := range repo.Experiments {
		got[e.Metadata.Name] = e.Spec.Plots
	}
	want := map[string][]v1alpha1.Plot{
		"a": {{Metric: "err", Against: "samples"}},
		"b": {{Metric: "loss", Against: "n"}},
		"c": {{Metric: "acc", Against: "n"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plots (-want +got):\n%s", diff)
	}
}
