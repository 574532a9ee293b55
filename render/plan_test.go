package render_test

import (
	"errors"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

const digest = "docker.io/library/python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

// spec is the experiment the property tests start from; each test edits
// one line of it with strings.Replace.
const spec = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: pi
spec:
  image: ` + digest + `
  command: ["python", "estimate.py", "--samples", "{{params.samples}}", "--seed", "{{params.seed}}"]
  env:
    - {name: OMP_NUM_THREADS, value: "1"}
    - {name: API_TOKEN, secretRef: {name: lab-tokens, key: api}}
  context: code/pi
  params: {samples: 1000}
  sweep:
    matrix: {seed: [1, 2, 3]}
  inputs:
    - {name: table, file: data/table.csv}
    - {name: remote, uri: "https://example.org/x.csv", sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855}
  outputs: [out/estimate.json]
  metrics: out/metrics.json
  resources: {cpu: "1", memory: 512Mi}
  timeout: 30m
  retries: {limit: 2, onExitCodes: [75]}
  queue: research
  priorityClassName: low
  nodeSelector: {pool: cpu}
  tolerations: [{key: spot, operator: Exists, effect: NoSchedule}]
`

func repoFiles() map[string]string {
	return map[string]string{
		"experiments/pi.yaml":    spec,
		"code/pi/estimate.py":    "print(3.14)\n",
		"code/pi/lib/helpers.py": "X = 1\n",
		"data/table.csv":         "a,b\n1,2\n",
		"README.md":              "lab\n",
	}
}

func planIDs(t *testing.T, files map[string]string, mode v1alpha1.Mode) []string {
	t.Helper()
	res, err := render.Plan(tree.MemoryOf(files), render.PlanOptions{Mode: mode, StoreURL: "file:///store"})
	if err != nil {
		t.Fatalf("Plan: %v", err)
	}
	ids := make([]string, len(res.Runs))
	for i, r := range res.Runs {
		ids[i] = r.ID
	}
	return ids
}

func edit(files map[string]string, path, old, new string) map[string]string {
	out := map[string]string{}
	for k, v := range files {
		out[k] = v
	}
	if !strings.Contains(out[path], old) {
		panic("edit: " + old + " not in " + path)
	}
	out[path] = strings.Replace(out[path], old, new, 1)
	return out
}

// TestGoldenIDs pins the run IDs of a fixed repository in both modes. A
// change here moves every published ID: revert it or bump contract.IDVersion.
func TestGoldenIDs(t *testing.T) {
	for _, c := range []struct {
		mode v1alpha1.Mode
		want []string
	}{
		{v1alpha1.ModeKubernetes, []string{ // computed once with this recipe (idVersion 1)
			"b0f93a06b6051adac70a2231129f4672923568aa467cb59ef01af6a3b00f3aab", "06bc3885d740e9593ee3f2e4735870173903d6b6c7f7e114ea7306f5f5107508", "985421ad44ea2bc4518f36d75e9ce0110cce39ed76a806b2b47ae660a17a34af"}},
		{v1alpha1.ModeLocal, []string{"0309ca8063edcab0493f5bffbded7b3f94ff098232da67f9bfe6db956f09533e", "bbfa66b93b01cbe605c8634c30eea0e4311ecf915a0a851389351a75273f797d", "a0b948f7da461c84607f79cdb762c58c6fb45ea2325191c878251a94e31837d3"}},
	} {
		if diff := cmp.Diff(c.want, planIDs(t, repoFiles(), c.mode)); diff != "" {
			t.Errorf("%s IDs (-want +got):\n%s", c.mode, diff)
		}
	}
}

// TestIdentityOfARun checks one run's identity field by field, so the golden
// IDs above hash what DESIGN.md says and nothing else.
func TestIdentityOfARun(t *testing.T) {
	m := tree.MemoryOf(repoFiles())
	res, err := render.Plan(m, render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		t.Fatal(err)
	}
	ctx, _ := tree.TreeHash(m, "code/pi")
	table, _ := m.Stat("data/table.csv")
	run := res.Runs[1]
	want := contract.Identity{
		IDVersion:  contract.IDVersion,
		Experiment: "pi",
		Image:      digest[strings.Index(digest, "@")+1:],
		Command:    []string{"python", "estimate.py", "--samples", "1000", "--seed", "2"},
		Env: []contract.EnvVar{ // sorted by name
			{Name: "API_TOKEN", SecretRef: &contract.SecretRef{Name: "lab-tokens", Key: "api"}},
			{Name: "OMP_NUM_THREADS", Value: "1"},
		},
		Params:      map[string]any{"samples": int64(1000), "seed": int64(2)},
		ContextTree: string(ctx),
		Inputs: []contract.IdentityInput{ // sorted by name
			{Name: "remote", Path: "inputs/remote", SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
			{Name: "table", Path: "inputs/table", SHA256: sha256Hex("a,b\n1,2\n")},
		},
		Outputs: []string{"out/estimate.json"},
		Metrics: "out/metrics.json",
	}
	if diff := cmp.Diff(want, run.Contract.Identity); diff != "" {
		t.Errorf("identity (-want +got):\n%s", diff)
	}
	if id, _ := run.Contract.Identity.ID(); id != run.ID || run.Contract.RunID != run.ID {
		t.Errorf("run ID %s, contract %s, identity hashes to %s", run.ID, run.Contract.RunID, id)
	}
	c := render.Contract(run)
	if c.Inputs[1].GitBlob != string(table.Hash) || c.Inputs[1].RepoPath != "data/table.csv" || c.Store != "" {
		t.Errorf("contract input %+v store %q", c.Inputs[1], c.Store)
	}
	if c.Limits.CPU != "1" || c.Limits.Memory != "512Mi" || c.Limits.Timeout.String() != "30m0s" || c.Retries.Limit != 2 {
		t.Errorf("contract limits %+v retries %+v", c.Limits, c.Retries)
	}
	if run.SpecPath != "experiments/pi.yaml" || run.SpecBlob != string(tree.BlobID([]byte(spec))) {
		t.Errorf("spec %s %s", run.SpecPath, run.SpecBlob)
	}
}

func TestAddingASweepValueAddsExactlyOneID(t *testing.T) {
	before := planIDs(t, repoFiles(), v1alpha1.ModeKubernetes)
	after := planIDs(t, edit(repoFiles(), "experiments/pi.yaml", "seed: [1, 2, 3]", "seed: [1, 2, 3, 4]"), v1alpha1.ModeKubernetes)
	added, removed := diffSets(before, after)
	if len(added) != 1 || len(removed) != 0 {
		t.Errorf("added %v removed %v, want one added, none removed", added, removed)
	}
	// Raising repeat adds one run per point and keeps the first.
	repeated := planIDs(t, edit(repoFiles(), "experiments/pi.yaml", "  context:", "  repeat: 2\n  context:"), v1alpha1.ModeKubernetes)
	added, removed = diffSets(before, repeated)
	if len(added) != 3 || len(removed) != 0 {
		t.Errorf("repeat 2: added %d removed %d, want 3 and 0", len(added), len(removed))
	}
}

// TestSchedulingFieldsChangeNoID: resources, timeout, retries, queue,
// priority, placement, metadata and the file's layout are not identity.
func TestSchedulingFieldsChangeNoID(t *testing.T) {
	base := planIDs(t, repoFiles(), v1alpha1.ModeKubernetes)
	const f = "experiments/pi.yaml"
	edits := map[string]map[string]string{
		"resources":      edit(repoFiles(), f, `resources: {cpu: "1", memory: 512Mi}`, `resources: {cpu: "8", memory: 64Gi, gpu: 2}`),
		"timeout":        edit(repoFiles(), f, "timeout: 30m", "timeout: 2h"),
		"retries":        edit(repoFiles(), f, "retries: {limit: 2, onExitCodes: [75]}", "retries: {limit: 5, onExitCodes: [75, 76]}"),
		"queue":          edit(repoFiles(), f, "queue: research", "queue: batch"),
		"priority":       edit(repoFiles(), f, "priorityClassName: low", "priorityClassName: high"),
		"nodeSelector":   edit(repoFiles(), f, "nodeSelector: {pool: cpu}", "nodeSelector: {pool: big}"),
		"tolerations":    edit(repoFiles(), f, "tolerations: [{key: spot, operator: Exists, effect: NoSchedule}]", "tolerations: []"),
		"labels":         edit(repoFiles(), f, "  name: pi\n", "  name: pi\n  labels: {team: ml}\n"),
		"file outside":   edit(repoFiles(), "README.md", "lab", "lab!"),
		"env order":      edit(repoFiles(), f, "    - {name: OMP_NUM_THREADS, value: \"1\"}\n    - {name: API_TOKEN, secretRef: {name: lab-tokens, key: api}}", "    - {name: API_TOKEN, secretRef: {name: lab-tokens, key: api}}\n    - {name: OMP_NUM_THREADS, value: \"1\"}"),
		"flow vs block":  edit(repoFiles(), f, "params: {samples: 1000}", "params:\n    samples: 1000"),
		"number spelled": edit(repoFiles(), f, "params: {samples: 1000}", "params: {samples: 1000.0}"),
		"new file moves results": func() map[string]string {
			m := repoFiles()
			m["results/pi/abc/run.json"] = "{}"
			return m
		}(),
	}
	for name, files := range edits {
		if diff := cmp.Diff(base, planIDs(t, files, v1alpha1.ModeKubernetes)); diff != "" {
			t.Errorf("%s changed IDs:\n%s", name, diff)
		}
	}
}

// TestIdentityFieldsChangeEveryID: each field of the identity moves every ID.
func TestIdentityFieldsChangeEveryID(t *testing.T) {
	base := planIDs(t, repoFiles(), v1alpha1.ModeKubernetes)
	const f = "experiments/pi.yaml"
	edits := map[string]map[string]string{
		"name":           edit(repoFiles(), f, "name: pi", "name: pi2"),
		"image":          edit(repoFiles(), f, "sha256:0123", "sha256:f123"),
		"command":        edit(repoFiles(), f, `"--samples"`, `"--n"`),
		"env value":      edit(repoFiles(), f, `value: "1"`, `value: "2"`),
		"secret name":    edit(repoFiles(), f, "name: lab-tokens", "name: other-tokens"),
		"param default":  edit(repoFiles(), f, "samples: 1000", "samples: 1001"),
		"unused param":   edit(repoFiles(), f, "samples: 1000", "samples: 1000, note: x"),
		"context file":   edit(repoFiles(), "code/pi/lib/helpers.py", "X = 1", "X = 2"),
		"context folder": edit(repoFiles(), f, "context: code/pi", "context: code"),
		"repo input":     edit(repoFiles(), "data/table.csv", "1,2", "1,3"),
		"uri input":      edit(repoFiles(), f, "sha256: e3b0", "sha256: f3b0"),
		"input path":     edit(repoFiles(), f, "file: data/table.csv}", "file: data/table.csv, path: t.csv}"),
		"outputs":        edit(repoFiles(), f, "outputs: [out/estimate.json]", "outputs: [out/estimate.json, out/plot.svg]"),
		"metrics":        edit(repoFiles(), f, "metrics: out/metrics.json", "metrics: out/m.json"),
	}
	for name, files := range edits {
		after := planIDs(t, files, v1alpha1.ModeKubernetes)
		if len(after) != len(base) {
			t.Errorf("%s: %d runs, want %d", name, len(after), len(base))
			continue
		}
		if _, removed := diffSets(base, after); len(removed) != len(base) {
			t.Errorf("%s kept %d of %d IDs", name, len(base)-len(removed), len(base))
		}
	}
}

func TestLocalAndKubernetesIDsDiffer(t *testing.T) {
	local := planIDs(t, repoFiles(), v1alpha1.ModeLocal)
	kube := planIDs(t, repoFiles(), v1alpha1.ModeKubernetes)
	if _, removed := diffSets(kube, local); len(removed) != len(kube) {
		t.Errorf("local and kubernetes runs share IDs: %v %v", local, kube)
	}
	// In local mode the image is not identity: every run records "host".
	other := planIDs(t, edit(repoFiles(), "experiments/pi.yaml", "sha256:0123", "sha256:f123"), v1alpha1.ModeLocal)
	if diff := cmp.Diff(local, other); diff != "" {
		t.Errorf("local IDs depend on the image:\n%s", diff)
	}
	host := planIDs(t, edit(repoFiles(), "experiments/pi.yaml", "image: "+digest, "image: host"), v1alpha1.ModeLocal)
	if diff := cmp.Diff(local, host); diff != "" {
		t.Errorf("image: host and a digest differ in local mode:\n%s", diff)
	}
}

// TestTemplateChangesMoveOnlyWhatTheyChange: the ID covers the merged spec.
func TestTemplateChangesMoveOnlyWhatTheyChange(t *testing.T) {
	files := repoFiles()
	files["templates/base.yaml"] = "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  env: [{name: LANG, value: C}]\n  queue: q1\n"
	files = edit(files, "experiments/pi.yaml", "  image:", "  template: templates/base.yaml\n  image:")
	base := planIDs(t, files, v1alpha1.ModeKubernetes)
	same := planIDs(t, edit(files, "templates/base.yaml", "queue: q1", "queue: q2"), v1alpha1.ModeKubernetes)
	if diff := cmp.Diff(base, same); diff != "" {
		t.Errorf("a scheduling change in the template moved IDs:\n%s", diff)
	}
	moved := planIDs(t, edit(files, "templates/base.yaml", "value: C", "value: C.UTF-8"), v1alpha1.ModeKubernetes)
	if _, removed := diffSets(base, moved); len(removed) != len(base) {
		t.Errorf("an env change in the template kept %d IDs", len(base)-len(removed))
	}
}

func TestSweepOrder(t *testing.T) {
	files := edit(repoFiles(), "experiments/pi.yaml", "matrix: {seed: [1, 2, 3]}",
		"matrix: {seed: [2, 1], lr: [0.1, 0.01]}\n    exclude: [{seed: 1, lr: 0.01}]\n    include: [{seed: 7, lr: 1e-5, extra: x}]")
	res, err := render.Plan(tree.MemoryOf(files), render.PlanOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range res.Runs {
		got = append(got, strings.Join(r.Contract.Command[3:], " "))
	}
	// lr before seed (names sorted, first varies slowest), values as written.
	want := []string{"1000 --seed 2", "1000 --seed 1", "1000 --seed 2", "1000 --seed 7"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("commands (-want +got):\n%s", diff)
	}
	var params []map[string]any
	for _, r := range res.Runs {
		params = append(params, r.Params)
	}
	wantParams := []map[string]any{
		{"samples": int64(1000), "lr": 0.1, "seed": int64(2)},
		{"samples": int64(1000), "lr": 0.1, "seed": int64(1)},
		{"samples": int64(1000), "lr": 0.01, "seed": int64(2)},
		{"samples": int64(1000), "lr": 1e-5, "seed": int64(7), "extra": "x"},
	}
	if diff := cmp.Diff(wantParams, params); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}

func TestPlanErrors(t *testing.T) {
	const f = "experiments/pi.yaml"
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name:  "unknown parameter in the command",
		files: edit(repoFiles(), f, `"{{params.seed}}"`, `"{{params.sead}}"`),
		want:  []string{`experiments/pi.yaml:7:83: spec.command[5]: {{params.sead}}: no parameter "sead" (params and sweep define samples, seed)`},
	}, {
		name:  "template syntax",
		files: edit(repoFiles(), f, `value: "1"`, `value: "{{ env.HOME }}"`),
		want:  []string{`experiments/pi.yaml:9:38: spec.env[0].value: "{{ env.HOME }}": only {{params.NAME}} is expanded; write a literal {{ as {{"{{"}}`},
	}, {
		name:  "repository input missing",
		files: edit(repoFiles(), f, "file: data/table.csv", "file: data/tabel.csv"),
		want:  []string{`experiments/pi.yaml:16:27: spec.inputs[0].file: "data/tabel.csv": stat data/tabel.csv: file does not exist`},
	}, {
		name:  "declared sha256 does not match the repository file",
		files: edit(repoFiles(), f, "file: data/table.csv}", "file: data/table.csv, sha256: "+strings.Repeat("0", 64)+"}"),
		want: []string{`experiments/pi.yaml:16:51: spec.inputs[0].sha256: ` + strings.Repeat("0", 64) +
			` does not match "data/table.csv", whose sha256 is ` + sha256Hex("a,b\n1,2\n")},
	}, {
		name:  "include duplicates a matrix point",
		files: edit(repoFiles(), f, "matrix: {seed: [1, 2, 3]}", "matrix: {seed: [1, 2, 3]}\n    include: [{seed: 2.0}]"),
		want:  []string{`experiments/pi.yaml:15:15: spec.sweep.include[0]: this point ("samples"=1000;"seed"=2) is already planned by spec.sweep; every point must be distinct`},
	}, {
		name: "too many runs in the repository",
		files: func() map[string]string {
			m := edit(repoFiles(), f, "matrix: {seed: [1, 2, 3]}", "matrix: {seed: [1, 2, 3, 4]}")
			m["expsync.yaml"] = "limits: {maxRuns: 3}\n"
			return m
		}(),
		want: []string{`experiments/pi.yaml:4:9: the repository plans more than 3 runs (limits.maxRuns) with this experiment`},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := render.Plan(tree.MemoryOf(c.files), render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
			var list v1alpha1.ErrorList
			if !errors.As(err, &list) {
				t.Fatalf("Plan = %v, want an ErrorList", err)
			}
			var got []string
			for _, e := range list {
				got = append(got, e.Error())
			}
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func diffSets(before, after []string) (added, removed []string) {
	in := func(list []string, s string) bool {
		for _, x := range list {
			if x == s {
				return true
			}
		}
		return false
	}
	for _, a := range after {
		if !in(before, a) {
			added = append(added, a)
		}
	}
	for _, b := range before {
		if !in(after, b) {
			removed = append(removed, b)
		}
	}
	sort.Strings(added)
	sort.Strings(removed)
	return added, removed
}

func TestRunPoint(t *testing.T) {
	res, err := render.Plan(tree.MemoryOf(repoFiles()), render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]any{"seed": int64(1)}, res.Runs[0].Point); diff != "" {
		t.Errorf("point (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]any{"seed": int64(1), "samples": int64(1000)}, res.Runs[0].Params); diff != "" {
		t.Errorf("params (-want +got):\n%s", diff)
	}
}

// TestPlanConcurrently plans one tree from several goroutines (a controller
// reconciles repositories in parallel; readers and caches must be safe).
// Run with -race to make it meaningful.
func TestPlanConcurrently(t *testing.T) {
	m := tree.MemoryOf(repoFiles())
	want := planIDs(t, repoFiles(), v1alpha1.ModeKubernetes)
	errs := make(chan error, 8)
	for i := 0; i < 8; i++ {
		go func() {
			res, err := render.Plan(m, render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
			if err == nil {
				for j, r := range res.Runs {
					if r.ID != want[j] {
						err = errors.New("IDs differ between concurrent plans")
					}
				}
			}
			errs <- err
		}()
	}
	for i := 0; i < 8; i++ {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
}
