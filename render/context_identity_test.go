package render_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// Specs beside their code, as in examples/experiments: the default context
// (the file's folder) holds both experiment files, a template and the code.
const (
	besidePi = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: pi}
spec:
  template: experiments/lab/base.yaml
  image: ` + digest + `
  command: [python3, estimate.py, "{{params.seed}}"]
  sweep:
    matrix: {seed: [1, 2, 3]}
  outputs: [out.json]
  resources: {cpu: "1", memory: 512Mi}
  timeout: 30m
`
	besideOther = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: other}
spec:
  image: ` + digest + `
  command: [python3, other.py]
  outputs: [o.json]
  timeout: 5m
`
	besideTemplate = `apiVersion: expsync.dev/v1alpha1
kind: ExperimentTemplate
spec:
  env: [{name: LANG, value: C}]
  retries: {limit: 1}
`
)

func besideFiles() map[string]string {
	return map[string]string{
		"expsync.yaml":                  "ignore: [experiments/lab/settings.yaml]\n",
		"experiments/lab/pi.yaml":       besidePi,
		"experiments/lab/other.yaml":    besideOther,
		"experiments/lab/base.yaml":     besideTemplate,
		"experiments/lab/estimate.py":   "print(3.14)\n",
		"experiments/lab/other.py":      "print(1)\n",
		"experiments/lab/settings.yaml": "steps: 10\n", // read by the code: not a spec
		"README.md":                     "lab\n",
	}
}

func besideIDs(t *testing.T, files map[string]string) map[string][]string {
	t.Helper()
	res, err := render.Plan(tree.MemoryOf(files), render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	out := map[string][]string{}
	for _, r := range res.Runs {
		out[r.Experiment] = append(out[r.Experiment], r.ID)
	}
	return out
}

func set(m map[string]string, path, content string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	out[path] = content
	return out
}

// TestSpecEditsBesideTheCode: with the spec in its own context,
// editing it moved every ID of it and of every spec in the same folder.
func TestSpecEditsBesideTheCode(t *testing.T) {
	base := besideIDs(t, besideFiles())
	if len(base["pi"]) != 3 || len(base["other"]) != 1 {
		t.Fatalf("runs %v", base)
	}
	const pi, other = "experiments/lab/pi.yaml", "experiments/lab/other.yaml"
	unchanged := map[string]map[string]string{
		"timeout":                    edit(besideFiles(), pi, "timeout: 30m", "timeout: 2h"),
		"resources":                  edit(besideFiles(), pi, `cpu: "1"`, `cpu: "4"`),
		"a comment":                  edit(besideFiles(), pi, "kind: Experiment\n", "kind: Experiment # the estimate\n"),
		"template retries":           edit(besideFiles(), "experiments/lab/base.yaml", "limit: 1", "limit: 3"),
		"config defaults":            set(besideFiles(), "expsync.yaml", "ignore: [experiments/lab/settings.yaml]\ndefaults: {timeout: 3h}\n"),
		"a new experiment file":      set(besideFiles(), "experiments/lab/new.yaml", strings.ReplaceAll(besideOther, "other", "new")),
		"a file outside the context": edit(besideFiles(), "README.md", "lab", "lab!"),
	}
	for name, files := range unchanged {
		got := besideIDs(t, files)
		delete(got, "new") // the new file's own runs are new, of course
		if diff := cmp.Diff(base, got); diff != "" {
			t.Errorf("%s moved IDs (-before +after):\n%s", name, diff)
		}
	}

	// One more sweep value: exactly one new run, nothing else moves.
	after := besideIDs(t, edit(besideFiles(), pi, "seed: [1, 2, 3]", "seed: [1, 2, 3, 4]"))
	added, removed := diffSets(base["pi"], after["pi"])
	if len(added) != 1 || len(removed) != 0 || !cmp.Equal(base["other"], after["other"]) {
		t.Errorf("a sweep value: pi added %v removed %v; other %v → %v", added, removed, base["other"], after["other"])
	}

	// An identity field of the sibling moves the sibling only.
	after = besideIDs(t, edit(besideFiles(), other, "other.py]", "other.py, --fast]"))
	if !cmp.Equal(base["pi"], after["pi"]) || cmp.Equal(base["other"], after["other"]) {
		t.Errorf("sibling command: pi %v → %v, other %v → %v", base["pi"], after["pi"], base["other"], after["other"])
	}
	// An identity field in the template moves its experiment only.
	after = besideIDs(t, edit(besideFiles(), "experiments/lab/base.yaml", "value: C", "value: C.UTF-8"))
	if _, removed := diffSets(base["pi"], after["pi"]); len(removed) != 3 || !cmp.Equal(base["other"], after["other"]) {
		t.Errorf("template env: pi kept %d IDs, other %v → %v", 3-len(removed), base["other"], after["other"])
	}

	// The code, and a YAML file that is not a spec, move every ID of the context.
	for name, files := range map[string]map[string]string{
		"code":              edit(besideFiles(), "experiments/lab/estimate.py", "3.14", "3.1416"),
		"ignored YAML data": edit(besideFiles(), "experiments/lab/settings.yaml", "10", "20"),
		"a new code file":   set(besideFiles(), "experiments/lab/util/x.py", "X = 1\n"),
		"an invalid spec":   set(besideFiles(), "experiments/lab/broken.yaml", "kind: Experiment\nsteps: 1\n"),
	} {
		res, _ := render.Plan(tree.MemoryOf(files), render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
		got := map[string][]string{}
		for _, r := range res.Runs {
			got[r.Experiment] = append(got[r.Experiment], r.ID)
		}
		for exp, ids := range base {
			if _, removed := diffSets(ids, got[exp]); len(removed) != len(ids) {
				t.Errorf("%s: %s kept %d of %d IDs", name, exp, len(ids)-len(removed), len(ids))
			}
		}
	}
}

// TestContextNamedTwice: the contract keeps the real tree (what the runner
// materialises, reachable in Git) and the excluded paths; the identity takes
// the tree without them.
func TestContextNamedTwice(t *testing.T) {
	m := tree.MemoryOf(besideFiles())
	res, err := render.Plan(m, render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		t.Fatal(err)
	}
	real, _ := tree.TreeHash(m, "experiments/lab")
	stripped := tree.MemoryOf(besideFiles())
	for _, p := range []string{"pi.yaml", "other.yaml", "base.yaml"} {
		if err := stripped.Remove("experiments/lab/" + p); err != nil {
			t.Fatal(err)
		}
	}
	without, _ := tree.TreeHash(stripped, "experiments/lab")
	for _, run := range res.Runs {
		c := render.Contract(run)
		want := contract.Context{Path: "experiments/lab", Tree: string(real), Excluded: []string{"base.yaml", "other.yaml", "pi.yaml"}}
		if diff := cmp.Diff(want, c.Context); diff != "" {
			t.Errorf("%s contract context (-want +got):\n%s", run.ID, diff)
		}
		if c.Identity.ContextTree != string(without) || without == real {
			t.Errorf("identity contextTree %s, want %s (the real tree is %s)", c.Identity.ContextTree, without, real)
		}
	}
}

// TestIdentityTakesTheImageDigest: re-tagging (or renaming) the same
// digest moves nothing; another digest moves everything; the contract keeps
// the reference as written.
func TestIdentityTakesTheImageDigest(t *testing.T) {
	const f = "experiments/pi.yaml"
	base := planIDs(t, repoFiles(), v1alpha1.ModeKubernetes)
	for name, files := range map[string]map[string]string{
		"a tag":        edit(repoFiles(), f, "python@sha256", "python:3.12@sha256"),
		"another name": edit(repoFiles(), f, "docker.io/library/python@", "registry.example/mirror/python:3@"),
	} {
		if diff := cmp.Diff(base, planIDs(t, files, v1alpha1.ModeKubernetes)); diff != "" {
			t.Errorf("%s moved IDs:\n%s", name, diff)
		}
	}
	res, err := render.Plan(tree.MemoryOf(edit(repoFiles(), f, "python@sha256", "python:3.12@sha256")), render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Runs[0].Contract
	if c.Identity.Image != "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" ||
		c.Image != "docker.io/library/python:3.12@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef" {
		t.Errorf("identity image %q, contract image %q", c.Identity.Image, c.Image)
	}
	for in, want := range map[string]string{"host": "host", "a@sha256:ab": "sha256:ab", "a:1@sha256:ab": "sha256:ab", "a:1": "a:1"} {
		if got := render.ImageDigest(in); got != want {
			t.Errorf("ImageDigest(%q) = %q, want %q", in, got, want)
		}
	}
}
