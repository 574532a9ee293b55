package v1alpha1_test

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/tree"
)

const gpuTemplate = `apiVersion: expsync.dev/v1alpha1
kind: ExperimentTemplate
metadata: {name: gpu}
spec:
  template: templates/base.yaml
  image: host
  command: [python, train.py]
  params: {lr: 0.1, epochs: 10}
  env:
    - {name: A, value: from-template}
    - {name: B, value: from-template}
  resources: {gpu: 1, memory: 8Gi}
  nodeSelector: {accelerator: a100}
  outputs: [model/]
  queue: gpu
`

const baseTemplate = `apiVersion: expsync.dev/v1alpha1
kind: ExperimentTemplate
spec:
  retries: {limit: 2, onExitCodes: [75]}
  priorityClassName: low
  timeout: 2h
`

func TestTemplateMergeRule(t *testing.T) {
	files := map[string]string{
		"templates/gpu.yaml":  gpuTemplate,
		"templates/base.yaml": baseTemplate,
		"experiments/train.yaml": experiment("train", `  template: templates/gpu.yaml
  params: {lr: 0.01, batch: 32}
  env:
    - {name: B, value: from-experiment}
    - {name: C, value: new}
  resources: {cpu: "4"}
  outputs: [model/, metrics.json]
  queue: null
  retries: {limit: 0}
`),
	}
	repo, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := repo.Experiments[0]
	want := v1alpha1.ExperimentSpec{
		Template: "templates/gpu.yaml",
		Image:    "host",
		Command:  []string{"python", "train.py"},
		// Mappings merge key by key; the experiment wins.
		Params: map[string]any{"lr": 0.01, "epochs": int64(10), "batch": int64(32)},
		// env merges by name, in place; new names are appended.
		Env: []v1alpha1.EnvVar{{Name: "A", Value: "from-template"}, {Name: "B", Value: "from-experiment"}, {Name: "C", Value: "new"}},
		// The default context is the experiment file's folder, not the template's.
		Context:      "experiments",
		Repeat:       1,
		Resources:    v1alpha1.Resources{CPU: "4", Memory: "8Gi", GPU: 1, GPUResource: "nvidia.com/gpu"},
		NodeSelector: map[string]string{"accelerator": "a100"},
		// Other lists replace.
		Outputs: []string{"model/", "metrics.json"},
		// An explicit null removes the template's queue.
		Queue: "",
		// A template's template is merged too; limit 0 in the experiment wins.
		Retries:           v1alpha1.Retries{Limit: 0, OnExitCodes: []int32{75}},
		PriorityClassName: "low",
		Timeout:           v1alpha1.Duration{Duration: 2 * time.Hour},
	}
	if diff := cmp.Diff(want, got.Spec); diff != "" {
		t.Errorf("merged spec (-want +got):\n%s", diff)
	}
	wantRefs := []v1alpha1.FileRef{
		{Path: "templates/gpu.yaml", Blob: string(tree.BlobID([]byte(gpuTemplate)))},
		{Path: "templates/base.yaml", Blob: string(tree.BlobID([]byte(baseTemplate)))},
	}
	if diff := cmp.Diff(wantRefs, got.Templates); diff != "" {
		t.Errorf("templates (-want +got):\n%s", diff)
	}
	if got.Source.Blob != string(tree.BlobID([]byte(files["experiments/train.yaml"]))) {
		t.Errorf("source blob %s does not match the file", got.Source.Blob)
	}
}

func TestDefaults(t *testing.T) {
	files := map[string]string{
		"expsync.yaml":           "defaults:\n  resources: {cpu: 500m, memory: 1Gi}\n  queue: research\n",
		"experiments/pi/pi.yaml": experiment("pi", valid+"  resources: {memory: 2Gi}\n  inputs: [{name: table, file: data/t.csv}]\n"),
		"data/t.csv":             "a\n",
	}
	repo, err := v1alpha1.Load(tree.MemoryOf(files), v1alpha1.LoadOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if repo.Config.Experiments != "experiments" || repo.Config.Results != "results" {
		t.Errorf("config defaults: %+v", repo.Config)
	}
	s := repo.Experiments[0].Spec
	want := v1alpha1.ExperimentSpec{
		Image: "host", Command: []string{"sh", "-c", "true"},
		Context: "experiments/pi", Repeat: 1,
		Inputs:    []v1alpha1.Input{{Name: "table", File: "data/t.csv", Path: "inputs/table"}},
		Resources: v1alpha1.Resources{CPU: "500m", Memory: "2Gi"},
		Queue:     "research",
		Timeout:   v1alpha1.Duration{Duration: v1alpha1.DefaultTimeout},
	}
	if diff := cmp.Diff(want, s); diff != "" {
		t.Errorf("defaulted spec (-want +got):\n%s", diff)
	}
}
