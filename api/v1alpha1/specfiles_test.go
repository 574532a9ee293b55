package v1alpha1_test

import (
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

// TestSpecFiles: the files a run identity leaves out of context trees are
// exactly those read as specs; a YAML file that is not one stays (code may
// read it), and so does a file an experiment wrongly names as its template.
func TestSpecFiles(t *testing.T) {
	tpl := "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  timeout: 1m\n"
	files := map[string]string{
		"expsync.yaml":                 "ignore: [experiments/e/settings.yaml]\n",
		"experiments/e/ok.yaml":        experiment("ok", valid+"  template: templates/t.yaml\n"),
		"experiments/e/invalid.yaml":   experiment("bad", "  image: host\n  timeout: forever\n"),
		"experiments/e/two.yml":        experiment("two", valid) + "---\n" + tpl,
		"experiments/e/unused.yaml":    tpl,
		"experiments/e/settings.yaml":  "steps: 10\n",
		"experiments/e/wrongkind.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Secret\n",
		"experiments/e/syntax.yaml":    "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\n  bad: [\n",
		"experiments/e/other.yaml":     "apiVersion: v1\nkind: Experiment\nmetadata: {name: x}\n",
		"experiments/e/empty.yaml":     "",
		"experiments/e/code.yaml":      experiment("code", valid+"  template: code/run.py\n"),
		"templates/t.yaml":             tpl,
		"templates/unreferenced.yaml":  tpl,
		"code/run.py":                  "print(1)\n",
	}
	repo, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{})
	if err == nil {
		t.Fatal("the broken files loaded without errors")
	}
	want := []string{
		"experiments/e/code.yaml", // its template is not one, but the file itself reads as a spec
		"experiments/e/invalid.yaml",
		"experiments/e/ok.yaml",
		"experiments/e/two.yml",
		"experiments/e/unused.yaml",
		"expsync.yaml",
		"templates/t.yaml",
	}
	if diff := cmp.Diff(want, repo.SpecFiles); diff != "" {
		t.Errorf("SpecFiles (-want +got):\n%s", diff)
	}
}
