package e2e_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/executor/kube"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// prepareMessage is the init container's termination message (expsync exec
// --verify-inputs-only).
type prepareMessage struct {
	RunID          string `json:"runID"`
	ContractSHA256 string `json:"contractSHA256"`
	Verified       bool   `json:"verified"`
	ContextTree    string `json:"contextTree"`
	Inputs         []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	} `json:"inputs"`
	Mismatch *struct {
		Input, Want, Got string
	} `json:"mismatch"`
	Error string `json:"error"`
}

// runMessage is the run container's termination message.
type runMessage struct {
	RunID        string `json:"runID"`
	Status       string `json:"status"`
	ExitCode     int    `json:"exitCode"`
	Attempts     int    `json:"attempts"`
	ResultSHA256 string `json:"resultSHA256"`
	Error        string `json:"error"`
}

// exportRuns puts into the store what the controller exports before creating
// the Jobs — each run's context tree and its repository inputs — through the
// controller's own view of the claim (they land in inputs/, which pods read).
func exportRuns(t testing.TB, vs *kube.VolumeStorage, repo string, objs []render.JobObjects) {
	t.Helper()
	r, err := tree.NewDir(repo)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	ctx := context.Background()
	for _, o := range objs {
		c := contractOf(t, o)
		if _, err := store.ExportTree(ctx, vs.Store(), r, c.Context.Path); err != nil {
			t.Fatal(err)
		}
		for _, in := range c.Inputs {
			if in.RepoPath == "" {
				continue
			}
			data, err := r.ReadFile(in.RepoPath, 0)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := vs.Store().Put(ctx, bytes.NewReader(data), in.SHA256); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func contractOf(t testing.TB, o render.JobObjects) contract.Contract {
	t.Helper()
	var c contract.Contract
	if err := json.Unmarshal([]byte(o.ContractJSON), &c); err != nil {
		t.Fatalf("%s: contract: %v", o.Job.Name, err)
	}
	return c
}

// runJobs renders a repository into a fresh restricted namespace with its
// own store, creates every Job and waits for all of them.
type ranJobs struct {
	ns    string
	vs    *kube.VolumeStorage
	objs  []render.JobObjects
	jobs  map[string]*batchv1.Job
	taken time.Duration
}

func (n *node) runRepository(t *testing.T, prefix, repo string, timeout time.Duration) ranJobs {
	t.Helper()
	ns := n.namespace(t, prefix)
	vs := n.hostStore(t, ns)
	objs := n.renderJobs(t, repo, ns)
	exportRuns(t, vs, repo, objs)
	ctx := context.Background()
	names := make([]string, 0, len(objs))
	started := time.Now()
	for _, o := range objs {
		if _, err := n.create(ctx, vs, o); err != nil {
			t.Fatal(err)
		}
		names = append(names, o.Job.Name)
	}
	jobs := n.waitJobs(t, ns, names, timeout)
	return ranJobs{ns: ns, vs: vs, objs: objs, jobs: jobs, taken: time.Since(started)}
}

// TestExamplesRunOnARealNode renders examples/experiments (its kubernetes
// variant: the local images by digest) into Jobs and runs every one on the
// real node, in a namespace enforcing the restricted Pod Security Standard,
// with a hostPath-backed claim as the store. For every run it checks what a
// controller will read: the init container verified the context and inputs
// (its own termination message), the run container ran the command and
// reported the result (its termination message, the result in the store),
// the outputs are in the store with the digests the result names, the images
// that ran are the pinned ones — and the experiments really computed
// something (pi is close to π).
func TestExamplesRunOnARealNode(t *testing.T) {
	n := realNode(t)
	repo := kubeExamples(t)
	ran := n.runRepository(t, "examples", repo, 10*time.Minute)
	t.Logf("%d example runs finished in %s", len(ran.jobs), ran.taken.Round(time.Millisecond))
	if len(ran.objs) != 17 {
		t.Errorf("the examples rendered %d runs, want 17 (3 pi, 12 descent, 2 wordfreq)", len(ran.objs))
	}
	perExperiment := map[string]int{}
	for _, o := range ran.objs {
		job := ran.jobs[o.Job.Name]
		exp := o.Job.Labels[render.LabelExperiment]
		t.Run(o.Job.Name, func(t *testing.T) {
			if typ, cond := jobFinished(job); typ != batchv1.JobComplete {
				n.describe(t, ran.ns)
				t.Fatalf("Job %s: %s (%s: %s), want Complete", job.Name, typ, cond.Reason, cond.Message)
			}
			pods := n.podsOf(t, job)
			if len(pods) != 1 {
				t.Fatalf("%d pods ran, want exactly 1", len(pods))
			}
			res := checkPod(t, n, ran.vs, pods[0], o)
			perExperiment[exp]++
			checkMetrics(t, exp, res)
		})
	}
	if perExperiment["pi-montecarlo"] != 3 || perExperiment["descent-sweep"] != 12 || perExperiment["word-frequencies"] != 2 {
		t.Errorf("runs checked per experiment: %v", perExperiment)
	}
}

// checkPod checks one succeeded pod of a run and returns the run's result
// as read from the run's prefix of the store claim.
func checkPod(t *testing.T, n *node, vs *kube.VolumeStorage, pod corev1.Pod, o render.JobObjects) contract.Result {
	t.Helper()
	c := contractOf(t, o)
	if len(pod.Status.InitContainerStatuses) != 1 || len(pod.Status.ContainerStatuses) != 1 {
		t.Fatalf("pod %s: %d init and %d containers in the status", pod.Name, len(pod.Status.InitContainerStatuses), len(pod.Status.ContainerStatuses))
	}
	prep, run := pod.Status.InitContainerStatuses[0], pod.Status.ContainerStatuses[0]

	// The images that ran are the pinned ones (the kubelet reports them).
	if !strings.HasSuffix(prep.ImageID, digestOf(n.expsyncImage)) {
		t.Errorf("prepare ran image %s, want %s", prep.ImageID, n.expsyncImage)
	}
	if !strings.HasSuffix(run.ImageID, digestOf(c.Image)) {
		t.Errorf("run ran image %s, want %s", run.ImageID, c.Image)
	}

	// prepare: its own termination message says what it verified.
	if prep.State.Terminated == nil || prep.State.Terminated.ExitCode != 0 {
		t.Fatalf("prepare: %s", containerState(prep.State))
	}
	var pm prepareMessage
	if err := json.Unmarshal([]byte(prep.State.Terminated.Message), &pm); err != nil {
		t.Fatalf("prepare's termination message %q: %v", prep.State.Terminated.Message, err)
	}
	if !pm.Verified || pm.RunID != c.RunID || pm.ContextTree != c.Context.Tree || len(pm.Inputs) != len(c.Inputs) {
		t.Errorf("prepare reported %+v; want verified, run %s, context %s, %d inputs", pm, c.RunID, c.Context.Tree, len(c.Inputs))
	}
	// The pod ran the contract the Job carried (read through the downward
	// API), byte for byte.
	if pm.ContractSHA256 != o.ContractSHA256 {
		t.Errorf("prepare read a contract with sha256 %s, the Job carries %s", pm.ContractSHA256, o.ContractSHA256)
	}
	for i, in := range pm.Inputs {
		if i < len(c.Inputs) && (in.Name != c.Inputs[i].Name || in.SHA256 != c.Inputs[i].SHA256) {
			t.Errorf("prepare verified input %+v, the contract declares %s %s", in, c.Inputs[i].Name, c.Inputs[i].SHA256)
		}
	}

	// run: the summary in its termination message, the result in the store.
	if run.State.Terminated == nil || run.State.Terminated.ExitCode != 0 {
		t.Fatalf("run: %s", containerState(run.State))
	}
	var rm runMessage
	if err := json.Unmarshal([]byte(run.State.Terminated.Message), &rm); err != nil {
		t.Fatalf("run's termination message %q: %v", run.State.Terminated.Message, err)
	}
	if rm.RunID != c.RunID || rm.Status != string(contract.Succeeded) || rm.Attempts != 1 || rm.ResultSHA256 == "" {
		t.Fatalf("run reported %+v; want run %s Succeeded in 1 attempt with a result", rm, c.RunID)
	}
	data := prefixObject(t, vs, c.RunID, rm.ResultSHA256)
	var res contract.Result
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatalf("result %s: %v", rm.ResultSHA256, err)
	}
	if res.RunID != c.RunID || res.Status != contract.Succeeded || res.ExitCode != 0 {
		t.Errorf("result in the store: run %s %s exit %d", res.RunID, res.Status, res.ExitCode)
	}
	if len(res.Outputs) == 0 || len(res.Outputs) < len(c.Outputs) {
		t.Errorf("result names %d outputs, the contract declares %v", len(res.Outputs), c.Outputs)
	}
	// Every output is in the run's prefix with the bytes its digest names,
	// and the controller's import (rehash into results/) takes it.
	for _, out := range res.Outputs {
		if b := prefixObject(t, vs, c.RunID, out.SHA256); int64(len(b)) != out.Size {
			t.Errorf("output %s: %d bytes in the prefix, the result says %d", out.Path, len(b), out.Size)
		}
		if _, err := vs.Import(context.Background(), c.RunID, out.SHA256, 1<<30); err != nil {
			t.Errorf("the controller's import of output %s: %v", out.Path, err)
		}
	}
	if res.LogSHA256 != "" {
		prefixObject(t, vs, c.RunID, res.LogSHA256)
	}
	return res
}

// prefixObject reads an object of a run's prefix as the controller does
// (kube.VolumeStorage.OpenPrefixObject: no symlink out, files only) and
// checks its bytes hash to its name.
func prefixObject(t *testing.T, vs *kube.VolumeStorage, runID, sha string) []byte {
	t.Helper()
	rc, err := vs.OpenPrefixObject(context.Background(), runID, sha, 1<<30)
	if err != nil {
		t.Fatalf("object %s of run %s: %v", sha, runID, err)
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(data)
	if got := hex.EncodeToString(sum[:]); got != sha {
		t.Fatalf("object %s of run %s holds bytes hashing to %s", sha, runID, got)
	}
	return data
}

func digestOf(image string) string {
	if i := strings.Index(image, "@"); i >= 0 {
		return image[i+1:]
	}
	return image
}

// checkMetrics: the numbers show the experiment ran, not just that a pod
// exited 0.
func checkMetrics(t *testing.T, experiment string, res contract.Result) {
	t.Helper()
	m := res.Metrics
	switch experiment {
	case "pi-montecarlo":
		if math.Abs(m["estimate"]-math.Pi) > 0.05 || m["stderr"] <= 0 {
			t.Errorf("pi: metrics %v: not an estimate of pi from 200,000 samples", m)
		}
	case "descent-sweep":
		if _, ok := m["final_loss"]; !ok || m["steps_to_tol"] < 1 {
			t.Errorf("descent: metrics %v", m)
		}
	case "word-frequencies":
		if m["words"] <= 0 || m["distinct"] <= 0 || m["top_share"] <= 0 || m["top_share"] > 1 {
			t.Errorf("wordfreq: metrics %v", m)
		}
	}
}
