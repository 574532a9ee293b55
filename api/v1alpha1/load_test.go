package v1alpha1_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

// header is the first four lines of every experiment in these tests, so
// line numbers below start at 5 for "spec:".
const header = "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata:\n  name: NAME\n"

func experiment(name, spec string) string {
	return strings.Replace(header, "NAME", name, 1) + "spec:\n" + spec
}

// valid is a minimal valid spec body (lines 6 and 7).
const valid = "  image: host\n  command: [sh, -c, \"true\"]\n"

func loadErrors(t *testing.T, files map[string]string, mode v1alpha1.Mode) []string {
	t.Helper()
	_, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{Mode: mode})
	if err == nil {
		return nil
	}
	var list v1alpha1.ErrorList
	if !errors.As(err, &list) {
		t.Fatalf("Load returned %T %v, want an ErrorList", err, err)
	}
	lines := make([]string, len(list))
	for i, e := range list {
		lines[i] = e.Error()
	}
	return lines
}

func TestLoadValidationErrors(t *testing.T) {
	const digest = "docker.io/library/python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	cases := []struct {
		name  string
		files map[string]string
		mode  v1alpha1.Mode
		want  []string
	}{{
		name:  "unknown field with a hint",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  comand: [x]\n")},
		want:  []string{`experiments/a.yaml:8:3: spec: unknown field "comand"; did you mean "command"?`},
	}, {
		name:  "unknown field lists what is allowed",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  retries: {zzzzzzz: 1}\n")},
		want:  []string{`experiments/a.yaml:8:13: spec.retries: unknown field "zzzzzzz"; allowed: limit, onExitCodes`},
	}, {
		name:  "wrong types, all reported in one pass",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  repeat: two\n  outputs: out.json\n  params: {lr: [1]}\n  timeout: soon\n")},
		want: []string{
			`experiments/a.yaml:8:11: spec.repeat: must be an integer, got str "two"`,
			`experiments/a.yaml:9:12: spec.outputs: must be a list, got str "out.json"`,
			`experiments/a.yaml:10:16: spec.params.lr: must be a string, number or boolean, got a list`,
			`experiments/a.yaml:11:12: spec.timeout: must be a duration such as 30m or 1h30m, got "soon"`,
		},
	}, {
		name: "names",
		files: map[string]string{
			"experiments/a.yaml": experiment("Pi_Estimate", valid) + "---\n" + experiment(strings.Repeat("x", 41), valid) +
				"---\napiVersion: expsync.dev/v1alpha1\nkind: Experiment\nspec:\n" + valid,
		},
		want: []string{
			`experiments/a.yaml:4:9: metadata.name: "Pi_Estimate" must be lowercase letters, digits and '-', starting and ending with a letter or digit`,
			`experiments/a.yaml:12:9: metadata.name: "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx" is 41 characters; the limit is 40 (Job names are built from it)`,
			`experiments/a.yaml:17:1: metadata.name: missing; every experiment needs a name unique in the repository`,
		},
	}, {
		name: "apiVersion and kind",
		files: map[string]string{"experiments/a.yaml": "apiVersion: expsync.dev/v1\nkind: Experiment\nmetadata: {name: a}\nspec: {image: host, command: [x]}\n" +
			"---\napiVersion: expsync.dev/v1alpha1\nkind: Experment\n"},
		want: []string{
			`experiments/a.yaml:1:13: apiVersion: must be "expsync.dev/v1alpha1", got "expsync.dev/v1"`,
			`experiments/a.yaml:7:7: kind: must be one of Experiment, ExperimentTemplate, got "Experment"`,
		},
	}, {
		name: "images in kubernetes mode",
		mode: v1alpha1.ModeKubernetes,
		files: map[string]string{
			"experiments/a.yaml": experiment("a", valid) + "---\n" + experiment("b", "  image: python:3.12\n  command: [x]\n") +
				"---\n" + experiment("c", "  command: [x]\n") + "---\n" + experiment("d", "  image: "+digest+"\n  command: [x]\n"),
		},
		want: []string{
			`experiments/a.yaml:6:10: spec.image: "host" runs only in local mode; set a digest-pinned image to run in Kubernetes`,
			`experiments/a.yaml:14:10: spec.image: "python:3.12" is not pinned by digest; use name@sha256:<64 hex> (a tag can move, so kubernetes mode refuses it)`,
			`experiments/a.yaml:22:3: spec.image: missing; set a digest-pinned image (name@sha256:<64 hex>) or "host" for local runs only`,
		},
	}, {
		name: "env",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  env:\n"+
			"    - {name: A, value: x, secretRef: {name: s, key: k}}\n"+
			"    - {name: A, value: y}\n"+
			"    - {name: 1X, value: y}\n"+
			"    - {name: T, secretRef: {name: Bad_Secret, key: k}}\n"+
			"    - {name: EXPSYNC_RUN_ID, value: y}\n")},
		want: []string{
			`experiments/a.yaml:9:7: spec.env[0]: set value or secretRef, not both`,
			`experiments/a.yaml:10:14: spec.env[1].name: "A" is set twice`,
			`experiments/a.yaml:11:14: spec.env[2].name: "1X" must be letters, digits and '_', not starting with a digit`,
			`experiments/a.yaml:12:35: spec.env[3].secretRef.name: "Bad_Secret" must be a Secret name (lowercase DNS subdomain)`,
			`experiments/a.yaml:13:14: spec.env[4].name: "EXPSYNC_RUN_ID": names starting with EXPSYNC_ are reserved for the runner`,
		},
	}, {
		name: "sweep",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  sweep:\n"+
			"    matrix: {seed: [1, 2, 1], lr: []}\n"+
			"    exclude: [{sed: 1}]\n")},
		want: []string{
			`experiments/a.yaml:9:27: spec.sweep.matrix.seed[2]: value 1 repeats spec.sweep.matrix.seed[0]; every point must be distinct`,
			`experiments/a.yaml:9:35: spec.sweep.matrix.lr: needs at least one value`,
			`experiments/a.yaml:10:21: spec.sweep.exclude[0].sed: "sed" is not a matrix parameter; did you mean "seed"?`,
		},
	}, {
		name: "sweep too large, refused before expansion",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  repeat: 2\n"+
			"  sweep:\n"+
			"    matrix: {a: [1,2,3,4,5,6,7,8,9,10], b: [1,2,3,4,5,6,7,8,9,10], c: [1,2,3,4,5,6,7,8,9,10], d: [1,2,3,4,5,6]}\n")},
		want: []string{`experiments/a.yaml:10:5: spec.sweep: expands to 12000 runs; the limit is 10000 (limits.maxRunsPerExperiment)`},
	}, {
		name: "inputs",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  inputs:\n"+
			"    - {name: data, uri: https://example.org/x.csv}\n"+
			"    - {name: creds, uri: \"https://user:pw@example.org/x\", sha256: "+strings.Repeat("a", 64)+"}\n"+
			"    - {name: both, uri: https://example.org/y, file: data/y.csv, sha256: ABC}\n"+
			"    - {name: esc, file: ../../etc/passwd, path: /tmp/x}\n"+
			"    - {name: ftp, uri: ftp://example.org/z, sha256: "+strings.Repeat("b", 64)+"}\n"+
			"    - {file: data/x.csv}\n")},
		want: []string{
			`experiments/a.yaml:9:7: spec.inputs[0]: sha256: missing; an input fetched from a URI must declare its sha256`,
			`experiments/a.yaml:10:26: spec.inputs[1].uri: must not contain credentials; the runner takes them from its environment`,
			`experiments/a.yaml:11:7: spec.inputs[2]: set uri or file, not both`,
			`experiments/a.yaml:11:74: spec.inputs[2].sha256: "ABC" must be 64 lowercase hex digits`,
			`experiments/a.yaml:12:25: spec.inputs[3].file: "../../etc/passwd" must be a relative path that stays inside its folder (no '..', not absolute)`,
			`experiments/a.yaml:12:49: spec.inputs[3].path: "/tmp/x" must be a relative path that stays inside its folder (no '..', not absolute)`,
			`experiments/a.yaml:13:24: spec.inputs[4].uri: scheme "ftp" is not supported; use https, http, s3 or gs`,
			`experiments/a.yaml:14:7: spec.inputs[5]: name: missing`,
		},
	}, {
		name: "outputs and metrics",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  outputs: [out/a.json, /etc/x, ../up/, out/a.json]\n  metrics: out/m/\n")},
		want: []string{
			`experiments/a.yaml:8:25: spec.outputs[1]: "/etc/x" must be a relative path that stays inside its folder (no '..', not absolute)`,
			`experiments/a.yaml:8:33: spec.outputs[2]: "../up/" must be a relative path that stays inside its folder (no '..', not absolute)`,
			`experiments/a.yaml:8:41: spec.outputs[3]: "out/a.json" is declared twice`,
			`experiments/a.yaml:9:12: spec.metrics: "out/m/" must be a file, not a folder`,
		},
	}, {
		name: "context",
		files: map[string]string{
			"experiments/a.yaml": experiment("a", valid+"  context: .\n") + "---\n" + experiment("b", valid+"  context: ../x\n") +
				"---\n" + experiment("c", valid+"  context: code/missing\n"),
			"code/x.py": "",
		},
		want: []string{
			`experiments/a.yaml:8:12: spec.context: "." contains the results folder "results"; set a context that does not, so results commits never change run IDs`,
			`experiments/a.yaml:17:12: spec.context: "../x" must be a folder of the repository, from its root (no '..', not absolute)`,
			`experiments/a.yaml:26:12: spec.context: folder "code/missing" not found in the repository (contexts are paths from the repository root)`,
		},
	}, {
		name: "default context holding the results folder",
		files: map[string]string{
			"expsync.yaml":       "experiments: exp\nresults: exp/results\n",
			"exp/a.yaml":         experiment("a", valid),
			"exp/results/x.json": "{}",
		},
		want: []string{
			`exp/a.yaml:1:1: spec.context (default: the experiment file's folder "exp"): "exp" contains the results folder "exp/results"; set a context that does not, so results commits never change run IDs`,
		},
	}, {
		name: "duplicate names across files name both",
		files: map[string]string{
			"experiments/a.yaml":     experiment("pi", valid),
			"experiments/sub/b.yaml": experiment("pi", valid),
		},
		want: []string{
			`experiments/sub/b.yaml:4:9: metadata.name: experiment "pi" is also defined at experiments/a.yaml:4:9; names are unique per repository`,
		},
	}, {
		name: "scheduling fields",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  resources: {cpu: \"-1\", memory: 1Zz, gpu: 17}\n"+
			"  retries: {limit: 11, onExitCodes: [0, 75, 75]}\n"+
			"  queue: Research\n"+
			"  timeout: 200h\n"+
			"  tolerations: [{key: gpu, operator: Maybe}, {operator: Exists, value: x}]\n")},
		want: []string{
			`experiments/a.yaml:8:20: spec.resources.cpu: "-1" must be a positive quantity such as 500m, 2, 512Mi or 4Gi`,
			`experiments/a.yaml:8:34: spec.resources.memory: "1Zz" must be a positive quantity such as 500m, 2, 512Mi or 4Gi`,
			`experiments/a.yaml:8:44: spec.resources.gpu: 17 is above the limit 16 (limits.maxGPUs)`,
			`experiments/a.yaml:9:20: spec.retries.limit: 11 is above the limit 10 (limits.maxRetries)`,
			`experiments/a.yaml:9:38: spec.retries.onExitCodes[0]: 0 is not an exit code meaning failure (1-255)`,
			`experiments/a.yaml:9:45: spec.retries.onExitCodes[2]: 75 is listed twice`,
			`experiments/a.yaml:10:10: spec.queue: "Research": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
			`experiments/a.yaml:11:12: spec.timeout: 200h0m0s is above the limit 168h0m0s (limits.maxTimeout)`,
			`experiments/a.yaml:12:38: spec.tolerations[0].operator: "Maybe" must be Equal or Exists`,
			`experiments/a.yaml:12:72: spec.tolerations[1].value: must be empty when operator is Exists`,
		},
	}, {
		name: "params that would lose precision, YAML merge keys",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  params: {big: 9007199254740993, ok: 9007199254740991}\n"+
			"  nodeSelector: {<<: {a: b}}\n")},
		want: []string{
			`experiments/a.yaml:8:17: spec.params.big: integer 9007199254740993 is outside ±2^53 and would lose precision; quote it to make it a string`,
			`experiments/a.yaml:9:18: spec.nodeSelector: YAML merge keys (<<) are not supported; share defaults with spec.template`,
		},
	}, {
		name:  "YAML syntax error",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  outputs: [a, b\n")},
		// The parser reports the line of the open "["; no column.
		want: []string{`experiments/a.yaml:8:1: invalid YAML: did not find expected ',' or ']'`},
	}, {
		name:  "YAML scanner error",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  queue: a: b\n")},
		want:  []string{`experiments/a.yaml:8:1: invalid YAML: mapping values are not allowed in this context`},
	}, {
		name:  "YAML parser error without context",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  - x\n")},
		// yaml.v3 names the start of the mapping the bad line is in.
		want: []string{`experiments/a.yaml:6:1: invalid YAML: did not find expected key`},
	}, {
		name: "templates: missing, invalid, cycle",
		files: map[string]string{
			"experiments/a.yaml": experiment("a", valid+"  template: templates/missing.yaml\n") + "---\n" +
				experiment("b", valid+"  template: templates/bad.yaml\n") + "---\n" +
				experiment("c", valid+"  template: templates/loop1.yaml\n"),
			"templates/bad.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  resorces: {cpu: 1}\n",
			"templates/loop1.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  template: templates/loop2.yaml\n",
			"templates/loop2.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec:\n  template: templates/loop1.yaml\n",
		},
		want: []string{
			`experiments/a.yaml:8:13: spec.template: "templates/missing.yaml" not found in the repository (paths are from the repository root)`,
			`templates/bad.yaml:4:3: spec: unknown field "resorces"; did you mean "resources"?`,
			// The loop is reported where it closes.
			`templates/loop2.yaml:4:13: spec.template: "templates/loop1.yaml" extends itself (templates/loop1.yaml → templates/loop2.yaml → templates/loop1.yaml)`,
		},
	}, {
		name: "repository config: raised limits, unknown fields, bad folders",
		files: map[string]string{
			"expsync.yaml":       "limits: {maxRuns: 1000000, maxRetries: 3}\nresult: out\nexperiments: ../x\n",
			"experiments/a.yaml": experiment("a", valid),
		},
		want: []string{
			`expsync.yaml:1:19: limits.maxRuns: 1000000 is above the operator's limit 100000; a repository can only lower limits`,
			`expsync.yaml:2:1: unknown field "result"; did you mean "results"?`,
			`expsync.yaml:3:14: experiments: "../x" must be a relative path inside the repository`,
		},
	}, {
		name: "ignored files are not experiment files; a bad pattern is an error",
		files: map[string]string{
			"expsync.yaml":                    "ignore: [\"experiments/*/config\", \"experiments/notes.yaml\", \"[\"]\n",
			"experiments/a.yaml":              experiment("a", valid),
			"experiments/notes.yaml":          "todo: [write]\n",
			"experiments/train/config/m.yaml": "layers: 3\n",
			"experiments/train/other.yml":     "layers: 3\n",
		},
		want: []string{
			`experiments/train/other.yml:1:1: apiVersion: missing; set it to "expsync.dev/v1alpha1", or, if experiments/train/other.yml is not an experiment file, list it under ignore: in expsync.yaml (for example ignore: ["experiments/train/other.yml"])`,
			`experiments/train/other.yml:1:1: kind: missing; must be one of Experiment, ExperimentTemplate`,
			`expsync.yaml:1:60: ignore[2]: "[" is not a valid glob pattern: syntax error in pattern`,
		},
	}, {
		name: "repository defaults are checked",
		files: map[string]string{
			"expsync.yaml":       "defaults:\n  resources: {cpu: lots}\n  timeout: 1000h\n  queue: Q\n",
			"experiments/a.yaml": experiment("a", valid),
		},
		want: []string{
			`expsync.yaml:2:20: defaults.resources.cpu: "lots" must be a positive quantity such as 500m, 2, 512Mi or 4Gi`,
			`expsync.yaml:3:12: defaults.timeout: 1000h0m0s is above the limit 168h0m0s (limits.maxTimeout)`,
			`expsync.yaml:4:10: defaults.queue: "Q": a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')`,
		},
	}, {
		name: "lowered repository limits apply",
		files: map[string]string{
			"expsync.yaml":       "limits: {maxRetries: 1, maxRunsPerExperiment: 2}\n",
			"experiments/a.yaml": experiment("a", valid+"  retries: {limit: 2}\n  sweep: {matrix: {x: [1, 2, 3]}}\n"),
		},
		want: []string{
			`experiments/a.yaml:8:20: spec.retries.limit: 2 is above the limit 1 (limits.maxRetries)`,
			`experiments/a.yaml:9:10: spec.sweep: expands to 3 runs; the limit is 2 (limits.maxRunsPerExperiment)`,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			mode := c.mode
			if mode == "" {
				mode = v1alpha1.ModeLocal
			}
			got := loadErrors(t, c.files, mode)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}
