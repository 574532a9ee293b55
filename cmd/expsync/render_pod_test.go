package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// hostPod plays a rendered pod on this machine: each volume mount is a
// folder under root, and the containers' commands run with their paths
// translated, in order, as the kubelet would (init container first). It
// checks the wiring between render.Job and expsync exec without a cluster;
// the pod's isolation is the cluster's part (test/envtest checks the spec).
type hostPod struct {
	t    *testing.T
	root string
	spec corev1.PodSpec
}

// mountRoots are the pod paths that live in volumes or in /dev.
var mountRoots = []string{render.ContractDir, render.RunnerDir, render.WorkDir, render.OutputsDir, render.TmpDir, "/dev"}

func (p *hostPod) host(path string) string {
	for _, m := range mountRoots {
		if path == m || strings.HasPrefix(path, m+"/") {
			return filepath.Join(p.root, strings.ReplaceAll(strings.TrimPrefix(m, "/"), "/", "-"), strings.TrimPrefix(path, m))
		}
	}
	return path
}

// run runs one container and returns its exit code and termination message.
func (p *hostPod) run(c corev1.Container, bin string) (int, string) {
	p.t.Helper()
	argv := append(append([]string{}, c.Command...), c.Args...)
	for i, a := range argv {
		argv[i] = p.host(a)
	}
	if c.Name == render.InitContainerName {
		argv[0] = bin // the runner image's binary is the one built here
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	if c.WorkingDir != "" {
		cmd.Dir = p.host(c.WorkingDir)
	}
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + p.host(render.TmpDir)}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	code := 0
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		code = ee.ExitCode()
	} else if err != nil {
		p.t.Fatalf("start %s: %v", c.Name, err)
	}
	msg, _ := os.ReadFile(p.host(c.TerminationMessagePath))
	if code != 0 {
		p.t.Logf("%s exited %d: %s", c.Name, code, stderr.String())
	}
	return code, string(msg)
}

func newHostPod(t *testing.T, objs render.JobObjects) *hostPod {
	p := &hostPod{t: t, root: t.TempDir(), spec: objs.Job.Spec.Template.Spec}
	for _, m := range mountRoots {
		if err := os.MkdirAll(p.host(m), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The downward API volume presents the pod's contract annotation.
	if err := os.WriteFile(p.host(render.ContractPath), []byte(objs.Job.Spec.Template.Annotations[render.AnnotationContract]), 0o444); err != nil {
		t.Fatal(err)
	}
	return p
}

// exportForRun puts what the controller exports before creating a Job into
// the store: the context tree and the repository inputs.
func exportForRun(t *testing.T, st *store.Local, r tree.Reader, run render.Run) {
	t.Helper()
	ctx := context.Background()
	if _, err := store.ExportTree(ctx, st, r, run.Contract.Context.Path); err != nil {
		t.Fatal(err)
	}
	for _, in := range run.Contract.Inputs {
		if in.RepoPath == "" {
			continue
		}
		data, err := r.ReadFile(in.RepoPath, 0)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Put(ctx, bytes.NewReader(data), in.SHA256); err != nil {
			t.Fatal(err)
		}
	}
}

func planForPods(t *testing.T, dir, storeDir string) (tree.Reader, []render.Run) {
	t.Helper()
	r, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	plan, err := render.Plan(r, render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: "file://" + storeDir})
	if err != nil {
		t.Fatal(err)
	}
	return r, plan.Runs
}

// podFailureAction evaluates a Job's podFailurePolicy for containers that
// exited with the given codes, as the Job controller does: the first rule
// that matches decides; "" means no rule matched (the failure counts).
func podFailureAction(policy *batchv1.PodFailurePolicy, exits map[string]int32) batchv1.PodFailurePolicyAction {
	for _, rule := range policy.Rules {
		req := rule.OnExitCodes
		if req == nil {
			continue // pod conditions: none on a host
		}
		for name, code := range exits {
			if code == 0 || (req.ContainerName != nil && *req.ContainerName != name) {
				continue
			}
			in := false
			for _, v := range req.Values {
				in = in || v == code
			}
			if (req.Operator == batchv1.PodFailurePolicyOnExitCodesOpIn) == in {
				return rule.Action
			}
		}
	}
	return ""
}

// TestRenderedPodRunsOnTheHost plays the rendered pod of one run of each
// example: the init container copies the runner and verifies the inputs, the
// run container executes the command in the verified folder and writes its
// result; a failure's exit code meets the Job's podFailurePolicy.
func TestRenderedPodRunsOnTheHost(t *testing.T) {
	bin := expsyncBinary(t)
	storeDir := t.TempDir()
	st, err := store.OpenLocal(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	r, runs := planForPods(t, examplesDir, storeDir)
	opts := render.JobOptions{RunnerImage: "runner@sha256:" + strings.Repeat("1", 64)}
	seen := map[string]bool{}
	for _, run := range runs {
		if seen[run.Experiment] {
			continue
		}
		seen[run.Experiment] = true
		t.Run(run.Experiment, func(t *testing.T) {
			exportForRun(t, st, r, run)
			objs, err := render.RenderJobObjects(run, opts)
			if err != nil {
				t.Fatal(err)
			}
			pod := newHostPod(t, objs)
			code, msg := pod.run(pod.spec.InitContainers[0], bin)
			var v struct {
				RunID    string `json:"runID"`
				Verified bool   `json:"verified"`
			}
			if code != 0 || json.Unmarshal([]byte(msg), &v) != nil || !v.Verified || v.RunID != run.ID {
				t.Fatalf("prepare: exit %d, termination message %q", code, msg)
			}
			if fi, err := os.Stat(pod.host(render.RunnerInPod)); err != nil || fi.Mode()&0o111 == 0 {
				t.Fatalf("prepare did not install an executable runner at %s: %v", render.RunnerInPod, err)
			}
			code, msg = pod.run(pod.spec.Containers[0], bin)
			if code != 0 {
				t.Fatalf("run: exit %d, termination message %q", code, msg)
			}
			result, err := os.ReadFile(pod.host(render.ResultPath))
			if err != nil {
				t.Fatalf("no result at %s: %v", render.ResultPath, err)
			}
			var res struct {
				RunID   string            `json:"runID"`
				Status  string            `json:"status"`
				Outputs []json.RawMessage `json:"outputs"`
			}
			if err := json.Unmarshal(result, &res); err != nil || res.RunID != run.ID || res.Status != "Succeeded" || len(res.Outputs) == 0 {
				t.Errorf("result %s (%v)", result, err)
			}
		})
	}
	if len(seen) != 3 {
		t.Errorf("played %d experiments, want 3", len(seen))
	}
}

// TestRenderedPodFailuresMeetThePolicy: a wrong input stops the init
// container with the code the policy fails the Job on; a declared transient
// exit code is counted (retried); any other exit code fails the Job.
func TestRenderedPodFailuresMeetThePolicy(t *testing.T) {
	bin := expsyncBinary(t)
	repo := t.TempDir()
	writeRenderFile(t, filepath.Join(repo, "data", "in.txt"), "input\n")
	writeRenderFile(t, filepath.Join(repo, "experiments", "flaky.yaml"), `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: flaky}
spec:
  image: docker.io/library/busybox@sha256:`+strings.Repeat("b", 64)+`
  command: [sh, -c, "exit {{params.code}}"]
  sweep: {matrix: {code: [75, 3]}}
  inputs: [{name: in, file: data/in.txt}]
  retries: {limit: 2, onExitCodes: [75]}
`)
	storeDir := t.TempDir()
	st, err := store.OpenLocal(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	r, runs := planForPods(t, repo, storeDir)
	if len(runs) != 2 {
		t.Fatalf("%d runs", len(runs))
	}
	opts := render.JobOptions{RunnerImage: "runner@sha256:" + strings.Repeat("1", 64)}
	for _, tt := range []struct {
		code int
		want batchv1.PodFailurePolicyAction
	}{{75, batchv1.PodFailurePolicyActionCount}, {3, batchv1.PodFailurePolicyActionFailJob}} {
		var run render.Run
		for _, x := range runs {
			if x.Contract.Command[2] == "exit "+strconv.Itoa(tt.code) {
				run = x
			}
		}
		exportForRun(t, st, r, run)
		objs, err := render.RenderJobObjects(run, opts)
		if err != nil {
			t.Fatal(err)
		}
		pod := newHostPod(t, objs)
		if code, msg := pod.run(pod.spec.InitContainers[0], bin); code != 0 {
			t.Fatalf("prepare: exit %d: %s", code, msg)
		}
		code, _ := pod.run(pod.spec.Containers[0], bin)
		if got := podFailureAction(objs.Job.Spec.PodFailurePolicy, map[string]int32{render.MainContainerName: int32(code)}); code != tt.code || got != tt.want {
			t.Errorf("command exiting %d: run container exited %d, policy action %q, want %d and %q", tt.code, code, got, tt.code, tt.want)
		}
	}

	// The store's copy of the input no longer matches its digest: the
	// store is corrupt, not the run's definition, so the object is dropped
	// and the pod fails as infrastructure (the Job retries; no rule fails
	// it at once), naming the input and both digests.
	run := runs[0]
	objs, err := render.RenderJobObjects(run, opts)
	if err != nil {
		t.Fatal(err)
	}
	obj := st.ObjectPath(run.Contract.Inputs[0].SHA256)
	_ = os.Chmod(obj, 0o644)
	if err := os.WriteFile(obj, []byte("tampered\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	pod := newHostPod(t, objs)
	code, msg := pod.run(pod.spec.InitContainers[0], bin)
	got := podFailureAction(objs.Job.Spec.PodFailurePolicy, map[string]int32{render.InitContainerName: int32(code)})
	tampered := sha256.Sum256([]byte("tampered\n"))
	if code != int(contract.ExitInfrastructure) || got == batchv1.PodFailurePolicyActionFailJob ||
		!strings.Contains(msg, run.Contract.Inputs[0].SHA256) || !strings.Contains(msg, hex.EncodeToString(tampered[:])) {
		t.Errorf("corrupt store object: prepare exited %d (message %q), policy action %q; want %d, not FailJob, and both digests",
			code, msg, got, contract.ExitInfrastructure)
	}
	if _, err := os.Stat(obj); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("the corrupt object is still in the store (%v)", err)
	}
	if _, err := os.Stat(pod.host(render.ResultPath)); err == nil {
		t.Errorf("a result exists although the inputs did not verify")
	}
}
