package v1alpha1_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

// FuzzLoad feeds arbitrary bytes as an experiment file (and as a template it
// names) and as expsync.yaml: Load never panics, never returns anything but a result or an
// ErrorList, and every error names a position in a file of the repository.
func FuzzLoad(f *testing.F) {
	config := "limits: {maxRuns: 10, maxAliases: 3}\ndefaults: {queue: q, timeout: 1h}\nignore: [\"experiments/x*\"]\n"
	f.Add(experiment("a", valid), "")
	f.Add(experiment("a", valid+"  template: t.yaml\n  sweep: {matrix: {x: [1, 2]}, include: [{x: 3}], exclude: [{x: 1}]}\n"), config)
	f.Add(experiment("a", valid+"  metrics: m.json\n  sweep: {matrix: {lr: [0.1, 1], opt: [a]}, include: [{lr: 2, seed: 1}]}\n  plots: [{metric: loss, against: lr}, {metric: acc}, {metric: \"\", against: opt}]\n"), "")
	f.Add(experiment("a", "  template: t.yaml\n  plots: {metric: x}\n"), "")
	f.Add(experiment("a", valid+"  outputs: [o/, p.txt]\n  metrics: m.json\n  reproduce:\n    exact: [o/x, p.txt, ../q]\n    metrics: [{name: loss, rel: 0.01}, {name: acc, abs: -1e-3}, {name: e, abs: .nan}, {abs: 1}]\n"), "")
	f.Add(experiment("a", "  template: t.yaml\n  reproduce: {exact: [], metrics: {name: x}}\n"), "")
	f.Add(laughs(), "")
	f.Add("a: &a [*a]\n", "a: &a [*a]\n")
	f.Add("--- !!binary\n---\n- [\n", "experiments: ../x\nresults: .\n")
	f.Add("apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: a, <<: {x: 1}}\nspec: {params: {x: 1e400}}\n", config)
	f.Fuzz(func(t *testing.T, doc, config string) {
		files := map[string]string{
			"experiments/a.yaml": doc,
			"t.yaml":             "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  queue: q\n",
		}
		if strings.Contains(doc, "ExperimentTemplate") {
			files["t.yaml"] = doc
		}
		if config != "" {
			files["expsync.yaml"] = config
		}
		repo, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{Mode: v1alpha1.ModeKubernetes})
		if err == nil {
			if repo == nil {
				t.Fatal("no error and no repository")
			}
			return
		}
		var list v1alpha1.ErrorList
		if !errors.As(err, &list) {
			t.Fatalf("Load returned %T: %v", err, err)
		}
		for _, e := range list {
			if _, ok := files[e.Pos.File]; !ok && e.Pos.File != "experiments" {
				t.Fatalf("error names file %q: %v", e.Pos.File, e)
			}
			if e.Pos.Line < 1 || e.Pos.Column < 1 {
				t.Fatalf("error without a position: %v", e)
			}
		}
	})
}
