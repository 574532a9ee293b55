package v1alpha1_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// TestPlotsChangeNoRunID: plots are presentation. Adding, changing or
// removing them (in the experiment or its template) keeps every run ID and
// contract identity, in both modes, even with the spec file inside its own
// context (the default context is the file's folder).
func TestPlotsChangeNoRunID(t *testing.T) {
	const digest = "docker.io/library/python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	base := "  image: " + digest + "\n  command: [python3, train.py]\n  metrics: m.json\n" +
		"  sweep: {matrix: {lr: [0.1, 0.01], seed: [1, 2]}}\n"
	repo := func(expPlots, templatePlots string) map[string]string {
		return map[string]string{
			"experiments/lab/a.yaml":   experiment("a", "  template: experiments/lab/t.yaml\n"+base+expPlots),
			"experiments/lab/t.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  env: [{name: LANG, value: C}]\n" + templatePlots,
			"experiments/lab/train.py": "print(1)\n",
		}
	}
	without := repo("", "")
	variants := map[string]map[string]string{
		"one plot":           repo("  plots: [{metric: loss, against: lr}]\n", ""),
		"another plot":       repo("  plots: [{metric: acc, against: seed}, {metric: loss, against: lr}]\n", ""),
		"plot from template": repo("", "  plots: [{metric: loss, against: lr}]\n"),
	}
	for _, mode := range []v1alpha1.Mode{v1alpha1.ModeLocal, v1alpha1.ModeKubernetes} {
		want := identities(t, without, mode)
		if len(want) != 4 {
			t.Fatalf("%s: planned %d runs, want 4", mode, len(want))
		}
		for name, files := range variants {
			if diff := cmp.Diff(want, identities(t, files, mode)); diff != "" {
				t.Errorf("%s, %s: run IDs moved (-without plots +with):\n%s", mode, name, diff)
			}
		}
	}
}

// identities maps each planned run ID to its canonical identity.
func identities(t *testing.T, files map[string]string, mode v1alpha1.Mode) map[string]string {
	t.Helper()
	plan, err := render.Plan(tree.MemoryOf(files), render.PlanOptions{Mode: mode})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	out := map[string]string{}
	for _, r := range plan.Runs {
		canonical, err := r.Contract.Identity.Canonical()
		if err != nil {
			t.Fatal(err)
		}
		out[r.ID] = string(canonical)
	}
	return out
}
