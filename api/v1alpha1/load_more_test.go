package v1alpha1_test

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
)

// TestLoadValidationErrorsMore covers the remaining checks, one case each.
func TestLoadValidationErrorsMore(t *testing.T) {
	cases := []struct {
		name  string
		files map[string]string
		want  []string
	}{{
		name:  "document without apiVersion and kind",
		files: map[string]string{"experiments/a.yaml": "metadata: {name: a}\n"},
		want: []string{
			`experiments/a.yaml:1:1: apiVersion: missing; set it to "expsync.dev/v1alpha1", or, if experiments/a.yaml is not an experiment file, list it under ignore: in expsync.yaml (for example ignore: ["experiments/a.yaml"])`,
			`experiments/a.yaml:1:1: kind: missing; must be one of Experiment, ExperimentTemplate`,
		},
	}, {
		name:  "experiments folder named in expsync.yaml but absent",
		files: map[string]string{"expsync.yaml": "experiments: nothere\n", "experiments/a.yaml": "metadata: {name: a}\n"},
		want:  []string{`expsync.yaml:1:14: experiments: folder "nothere" not found in the repository; create it or fix expsync.yaml`},
	}, {
		name:  "document that is not a mapping",
		files: map[string]string{"experiments/a.yaml": "- a\n- b\n"},
		want:  []string{`experiments/a.yaml:1:1: a document must be a mapping with apiVersion, kind, metadata and spec, got a list`},
	}, {
		name:  "duplicate keys, keys that are not strings",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  params: {x: 1, x: 2}\n  nodeSelector: {[a]: b}\n  queue: q\n  queue: r\n")},
		want: []string{
			`experiments/a.yaml:8:18: spec.params: duplicate key "x"`,
			`experiments/a.yaml:9:18: spec.nodeSelector: keys must be strings, got a list`,
			`experiments/a.yaml:11:3: spec: field "queue" is set twice`,
		},
	}, {
		name: "names of params, sweep entries",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  params: {1x: 1, my-param: 2}\n"+
			"  sweep: {matrix: {a: [1]}, include: [{}], exclude: [{}]}\n")},
		want: []string{
			`experiments/a.yaml:8:16: spec.params.1x: parameter name "1x" must be letters, digits and '_', not starting with a digit`,
			`experiments/a.yaml:8:29: spec.params.my-param: parameter name "my-param" must be letters, digits and '_', not starting with a digit`,
			`experiments/a.yaml:9:39: spec.sweep.include[0]: an include entry needs at least one parameter`,
			`experiments/a.yaml:9:54: spec.sweep.exclude[0]: an exclude entry needs at least one parameter`,
		},
	}, {
		name:  "null parameter values",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+"  params: {a: null}\n  sweep: {matrix: {b: [1, ~]}, include: [{c: null}]}\n")},
		want: []string{
			`experiments/a.yaml:8:15: spec.params.a: must be a string, number or boolean, got null`,
			`experiments/a.yaml:9:27: spec.sweep.matrix.b[1]: must be a string, number or boolean, got null`,
			`experiments/a.yaml:9:46: spec.sweep.include[0].c: must be a string, number or boolean, got null`,
		},
	}, {
		name: "repeat, retries, integers out of range",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  repeat: -1\n  retries: {limit: -1, onExitCodes: [4294967296]}\n") + "---\n" + experiment("b", valid+"  repeat: 101\n")},
		want: []string{
			`experiments/a.yaml:8:11: spec.repeat: must be at least 1, got -1`,
			`experiments/a.yaml:9:20: spec.retries.limit: must not be negative`,
			`experiments/a.yaml:9:38: spec.retries.onExitCodes[0]: 4294967296 is out of range`,
			`experiments/a.yaml:18:11: spec.repeat: 101 is above the limit 100 (limits.maxRepeat)`,
		},
	}, {
		name: "inputs: long name, URI without host, file in the results folder",
		files: map[string]string{"experiments/a.yaml": experiment("a", valid+
			"  inputs:\n"+
			"    - {name: "+strings.Repeat("n", 64)+", file: data/x}\n"+
			"    - {name: nohost, uri: \"https:///x\", sha256: "+strings.Repeat("c", 64)+"}\n"+
			"    - {name: res, file: results/pi/run.json}\n")},
		want: []string{
			`experiments/a.yaml:9:14: spec.inputs[0].name: "` + strings.Repeat("n", 64) + `" must be lowercase letters, digits, '-', '_' or '.'`,
			`experiments/a.yaml:10:27: spec.inputs[1].uri: needs a host`,
			`experiments/a.yaml:11:25: spec.inputs[2].file: "results/pi/run.json" lies in the results folder "results", which every results commit changes; inputs must not`,
		},
	}, {
		name: "labels, annotations, placement, priority, GPU resource",
		files: map[string]string{"experiments/a.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata:\n" +
			"  name: a\n  labels: {team: \"a b\"}\n  annotations: {\"bad key!\": x}\nspec:\n" + valid +
			"  priorityClassName: Low_Priority\n" +
			"  resources: {gpu: 1, gpuResource: \"not a resource\"}\n" +
			"  nodeSelector: {pool: \"-x\"}\n" +
			"  tolerations: [{key: \"k!\", effect: Sometimes, tolerationSeconds: 5}, {value: v}]\n"},
		want: []string{
			`experiments/a.yaml:5:18: metadata.labels.team: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
			`experiments/a.yaml:6:29: metadata.annotations.bad key!: key "bad key!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
			`experiments/a.yaml:10:22: spec.priorityClassName: "Low_Priority": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')`,
			`experiments/a.yaml:11:36: spec.resources.gpuResource: "not a resource" must be a resource name such as nvidia.com/gpu`,
			`experiments/a.yaml:12:24: spec.nodeSelector.pool: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')`,
			`experiments/a.yaml:13:23: spec.tolerations[0].key: "k!": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')`,
			`experiments/a.yaml:13:37: spec.tolerations[0].effect: "Sometimes" must be NoSchedule, PreferNoSchedule or NoExecute`,
			`experiments/a.yaml:13:67: spec.tolerations[0].tolerationSeconds: only applies with effect NoExecute`,
			`experiments/a.yaml:13:71: spec.tolerations[1]: operator Equal needs a key; use operator Exists to tolerate every taint`,
		},
	}, {
		name: "templates: wrong kind, two documents, too deep",
		files: map[string]string{
			"experiments/a.yaml": experiment("a", valid+"  template: t/kind.yaml\n") + "---\n" +
				experiment("b", valid+"  template: t/two.yaml\n") + "---\n" +
				experiment("c", valid+"  template: t/d1.yaml\n"),
			"t/kind.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nspec: {}\n",
			"t/two.yaml":  "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {}\n---\napiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {}\n",
			"t/d1.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {template: t/d2.yaml}\n",
			"t/d2.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {template: t/d3.yaml}\n",
			"t/d3.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {template: t/d4.yaml}\n",
			"t/d4.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {template: t/d5.yaml}\n",
			"t/d5.yaml":   "apiVersion: expsync.dev/v1alpha1\nkind: ExperimentTemplate\nspec: {}\n",
		},
		want: []string{
			`experiments/a.yaml:8:13: spec.template: "t/kind.yaml" is not a valid template (see its errors)`,
			`experiments/a.yaml:17:13: spec.template: "t/two.yaml" must hold exactly one document of kind ExperimentTemplate, found 2`,
			`t/d4.yaml:3:18: spec.template: templates extend each other more than 4 levels deep`,
			`t/kind.yaml:2:7: kind: must be one of ExperimentTemplate, got "Experiment"`,
		},
	}, {
		name: "config: two documents, wrong kind, experiments inside results, root folders",
		files: map[string]string{
			"expsync.yaml":       "kind: Config\nexperiments: results/exp\nresults: results\n---\nx: 1\n",
			"results/exp/a.yaml": experiment("a", valid),
		},
		want: []string{
			`expsync.yaml:1:7: kind: must be "RepositoryConfig", got "Config"`,
			`expsync.yaml:2:14: experiments: "results/exp" lies inside the results folder "results"`,
			`expsync.yaml:5:1: expsync.yaml holds one document, found 2`,
		},
	}, {
		name: "config: experiments is a file",
		files: map[string]string{
			"expsync.yaml": "experiments: README.md\n",
			"README.md":    "hi\n",
		},
		want: []string{`expsync.yaml:1:1: experiments: "README.md" is not a folder of the repository`},
	}, {
		name: "config: the root as a folder",
		files: map[string]string{
			"expsync.yaml": "results: .\n",
		},
		want: []string{`expsync.yaml:1:10: results: must be a folder below the repository root, not the root`},
	}, {
		name:  "booleans and strings where lists are expected",
		files: map[string]string{"experiments/a.yaml": experiment("a", "  image: host\n  command: python train.py\n  env: {A: 1}\n")},
		want: []string{
			`experiments/a.yaml:7:12: spec.command: must be a list, got str "python train.py"`,
			`experiments/a.yaml:8:8: spec.env: must be a list, got a mapping`,
		},
	}}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := loadErrors(t, c.files, v1alpha1.ModeLocal)
			if diff := cmp.Diff(c.want, got); diff != "" {
				t.Errorf("errors (-want +got):\n%s", diff)
			}
		})
	}
}

func TestMaxFiles(t *testing.T) {
	files := map[string]string{"expsync.yaml": "limits: {maxFiles: 2}\n"}
	for _, n := range []string{"a", "b", "c"} {
		files["experiments/"+n+".yaml"] = experiment(n, valid)
	}
	got := loadErrors(t, files, v1alpha1.ModeLocal)
	if diff := cmp.Diff([]string{"experiments:1:1: more than 2 experiment files (limits.maxFiles)"}, got); diff != "" {
		t.Errorf("errors (-want +got):\n%s", diff)
	}
}
