package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestRunGPUs: a run requesting a GPU is refused while expsync counts
// none, with a message naming the flag that changes it; `--gpus N` lets
// it run. Before, the message said "set the executor's GPUs" and no flag
// or setting did: a GPU experiment could never run in local mode.
func TestRunGPUs(t *testing.T) {
	l := newLab(t)
	l.Commit("gpu", map[string]string{"experiments/gpu.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: gpu
spec:
  image: host
  command: ["sh", "-c", "echo trained > out.txt"]
  outputs: [out.txt]
  resources: {cpu: 100m, gpu: 1}
`})
	key, _ := labKeyPair(t)
	dir := t.TempDir()
	args := []string{"run", l.URL(), "--allow-http", "--key", key, "--store", filepath.Join(dir, "store"),
		"--state", filepath.Join(dir, "state"), "--progress", "none"}
	code, stdout, stderr := labCLI(t, args...)
	if code != 1 || !strings.Contains(stderr, "requests 1 GPUs") || !strings.Contains(stderr, "--gpus") {
		t.Errorf("without --gpus: exit %d, want 1 with an error naming --gpus\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	if code, _, stderr := labCLI(t, "run", "--gpus", "-1", "--key", key, l.URL()); code != 2 || !strings.Contains(stderr, "--gpus -1") {
		t.Errorf("--gpus -1: exit %d, stderr %q; want a usage error", code, stderr)
	}
	code, stdout, stderr = labCLI(t, append(args, "--gpus", "1")...)
	if code != 0 || len(l.folders("gpu")) != 1 {
		t.Errorf("with --gpus 1: exit %d, %d results, want the run committed\nstdout: %s\nstderr: %s", code, len(l.folders("gpu")), stdout, stderr)
	}
}
