package envtest_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
)

// TestJobRunsAndIsCollected: a run's Job is created in the repository's
// namespace under its service account, owned by the repository; the
// Job controller makes its pod, the stand-in kubelet plays it, and the
// executor collects the result through its informers: the outputs
// rehashed into the controller's store, usage marked self-reported, the
// result in the run cache, the Job and the run's prefix gone — with two
// API writes over the run's whole life.
func TestJobRunsAndIsCollected(t *testing.T) {
	h := newJobsHarness(t, "jobs-collected", standin.Hooks{})
	runs := h.plan(experiment("copy", `mkdir -p out && cat data/in.txt > out/copy.txt && echo "{\"lines\": 1}" > out/metrics.json`,
		"  outputs: [out/copy.txt]\n  metrics: out/metrics.json\n"))
	p := h.startController(nil)
	before := p.requests.Writes()
	ctx, cancel := context.WithTimeout(h.ctx, 2*time.Minute)
	defer cancel()
	res, err := p.executor.Execute(ctx, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.Succeeded || res.ExitCode != 0 {
		t.Fatalf("status %s, exit %d: %s", res.Status, res.ExitCode, res.Error)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Path != "out/copy.txt" || res.Outputs[0].Size != int64(len("input\n")) {
		t.Fatalf("outputs %+v", res.Outputs)
	}
	st := h.storage.Store()
	for _, sha := range []string{res.Outputs[0].SHA256, res.LogSHA256, res.MetricsSHA256} {
		if ok, _ := st.Has(h.ctx, sha); !ok || sha == "" {
			t.Errorf("object %q is not in the controller's store", sha)
		}
	}
	if !res.Usage.SelfReported || res.Metrics["lines"] != 1 {
		t.Errorf("usage %+v (want self-reported), metrics %v", res.Usage, res.Metrics)
	}
	if res.Attempts != 1 || res.StartedAt.Before(res.QueuedAt) || res.FinishedAt.Before(res.StartedAt) {
		t.Errorf("attempts %d, queued %s, started %s, finished %s", res.Attempts, res.QueuedAt, res.StartedAt, res.FinishedAt)
	}
	if cached, err := runner.LoadResult(h.ctx, st, runs[0].ID); err != nil || cached.Status != contract.Succeeded {
		t.Errorf("run cache: %v, %v", cached, err)
	}
	if h.prefixExists(runs[0].ID) {
		t.Errorf("the run's prefix is still there")
	}
	if got := p.requests.Writes() - before; got != 2 {
		t.Errorf("%d API writes for one run, want 2 (create and delete its Job): %s", got, p.requests)
	}
	h.eventually("the Job and its pod to be gone", time.Minute, func() bool { return len(h.jobs()) == 0 && len(h.pods()) == 0 })
	t.Logf("requests of the controller process: %s", p.requests)
}

// holdRun returns hooks that hold every pod's run container until release
// is closed (or the pod is deleted), and a channel that receives each pod
// reaching it.
func holdRun() (standin.Hooks, chan *corev1.Pod, chan struct{}) {
	reached, release := make(chan *corev1.Pod, 16), make(chan struct{})
	return standin.Hooks{BeforeContainer: func(ctx context.Context, pod *corev1.Pod, container string) {
		if container != render.MainContainerName {
			return
		}
		reached <- pod
		select {
		case <-release:
		case <-ctx.Done():
		}
	}}, reached, release
}

// executeAsync runs Execute in the background.
func executeAsync(ctx context.Context, p *controllerProcess, run render.Run) chan execResult {
	ch := make(chan execResult, 1)
	go func() {
		res, err := p.executor.Execute(ctx, run)
		ch <- execResult{res, err}
	}()
	return ch
}

type execResult struct {
	res *contract.Result
	err error
}

func wait(t *testing.T, ch chan execResult) (*contract.Result, error) {
	t.Helper()
	select {
	case r := <-ch:
		return r.res, r.err
	case <-time.After(3 * time.Minute):
		t.Fatal("Execute did not return within 3 minutes")
		return nil, nil
	}
}

func waitPod(t *testing.T, ch chan *corev1.Pod) *corev1.Pod {
	t.Helper()
	select {
	case p := <-ch:
		return p
	case <-time.After(2 * time.Minute):
		t.Fatal("no pod reached its run container within 2 minutes")
		return nil
	}
}

// TestJobCarriesTheRepositorysTenancy: the Job lives in the repository's
// namespace, runs under the account it names, mounts only its claim and is
// owned by it; deleting the repository deletes its Jobs (the garbage
// collector, no finalizer), and the waiting run ends without a result.
func TestJobCarriesTheRepositorysTenancy(t *testing.T) {
	hooks, reached, _ := holdRun()
	h := newJobsHarness(t, "jobs-tenancy", hooks)
	runs := h.plan(experiment("tenant", `true`, ""))
	p := h.startController(nil)
	done := executeAsync(h.ctx, p, runs[0])
	pod := waitPod(t, reached)
	job := h.jobs()[0]
	if job.Namespace != h.ns || len(job.OwnerReferences) != 1 || job.OwnerReferences[0].UID != h.owner.UID {
		t.Errorf("Job %s/%s owned by %+v", job.Namespace, job.Name, job.OwnerReferences)
	}
	if pod.Spec.ServiceAccountName != "runs" || pod.Spec.AutomountServiceAccountToken == nil || *pod.Spec.AutomountServiceAccountToken {
		t.Errorf("pod runs as %q, token mounted %v", pod.Spec.ServiceAccountName, pod.Spec.AutomountServiceAccountToken)
	}
	for _, v := range pod.Spec.Volumes {
		if v.PersistentVolumeClaim != nil && v.PersistentVolumeClaim.ClaimName != "store" {
			t.Errorf("pod mounts claim %q", v.PersistentVolumeClaim.ClaimName)
		}
	}
	if err := h.clientset.CoreV1().ConfigMaps(h.ns).Delete(h.ctx, h.owner.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Errored || !strings.Contains(res.Error, "deleted") {
		t.Fatalf("after the repository was deleted: %+v, %v", res, err)
	}
	h.eventually("the garbage collector to delete the Job and its pod", time.Minute, func() bool { return len(h.jobs()) == 0 && len(h.pods()) == 0 })
	if _, err := runner.LoadResult(h.ctx, h.storage.Store(), runs[0].ID); err == nil {
		t.Errorf("a run whose Job was deleted has a cached result")
	}
}

// TestPodContradictingItsStatus: the command exits 3, and something it
// left behind rewrites the termination message and plants a result that
// claims success with an output. The kubelet's exit code wins.
func TestPodContradictingItsStatus(t *testing.T) {
	var forgedOutput string
	hooks := standin.Hooks{AfterContainer: func(pod *corev1.Pod, container, termination string, mounts map[string]string) {
		if container != render.MainContainerName {
			return
		}
		prefix := mounts[render.StoreRunDir]
		out := putObject(t, prefix, []byte("forged\n"))
		forgedOutput = out
		forged := fmt.Sprintf(`{"runID":%q,"status":"Succeeded","exitCode":0,"attempts":1,"outputs":[{"path":"out/copy.txt","mode":"100644","sha256":%q,"size":7}]}`,
			runIDOf(pod), out)
		result := putObject(t, prefix, []byte(forged))
		msg := fmt.Sprintf(`{"runID":%q,"status":"Succeeded","exitCode":0,"resultSHA256":%q}`, runIDOf(pod), result)
		if err := os.WriteFile(termination, []byte(msg), 0o666); err != nil {
			t.Error(err)
		}
	}}
	h := newJobsHarness(t, "jobs-forged", hooks)
	runs := h.plan(experiment("liar", `mkdir -p out && cp data/in.txt out/copy.txt && exit 3`, "  outputs: [out/copy.txt]\n"))
	p := h.startController(nil)
	res, err := p.executor.Execute(h.ctx, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.Failed || res.ExitCode != 3 || !strings.Contains(res.Error, "its container exited 3: the container's exit code stands") {
		t.Fatalf("status %s, exit code %d, error %q; want Failed with the container's exit code 3", res.Status, res.ExitCode, res.Error)
	}
	if forgedOutput == "" {
		t.Fatal("the forging hook did not run")
	}
}

// runIDOf is the run ID a pod's labels carry.
func runIDOf(pod *corev1.Pod) string {
	id, _ := render.RunIDFromLabelValue(pod.Labels[render.LabelRunID])
	return id
}

// putObject stores data in a run's prefix as the pod's store would.
func putObject(t *testing.T, prefix string, data []byte) string {
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	path := filepath.Join(prefix, "sha256", sha[:2], sha)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(path, data, 0o444); err != nil && !errors.Is(err, fs.ErrPermission) {
		t.Error(err)
	}
	return sha
}

// TestPodCannotWriteOutsideItsPrefix runs a hostile command as the pod's
// user in the sandbox the pod's spec describes: it tries to write next to
// its prefix, into the shared inputs, into another run's prefix and into the
// controller's results, to read another run's prefix, and plants symlinks
// to them in its own prefix. Every attempt fails, the host's store is
// unchanged outside the run's prefix, and collecting follows no symlink.
func TestPodCannotWriteOutsideItsPrefix(t *testing.T) {
	h := newJobsHarness(t, "jobs-escape", standin.Hooks{})
	victim := strings.Repeat("ab", 32)
	victimFile := filepath.Join(h.storage.PrefixDir(victim), "private.txt")
	if err := os.MkdirAll(filepath.Dir(victimFile), 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(victimFile, []byte("victim\n"), 0o666); err != nil {
		t.Fatal(err)
	}
	script := strings.Join([]string{
		`mkdir -p out`,
		`try() { if sh -c "$2" 2>/dev/null; then echo "$1 SUCCEEDED" >> out/attempts.txt; else echo "$1 denied" >> out/attempts.txt; fi; }`,
		`try next-to-prefix "echo x > /store/run/../escape"`,
		`try store-root "echo x > /store/escape"`,
		`try inputs "echo x > /store/inputs/planted"`,
		`try other-prefix "echo x > /store/runs/` + victim + `/private.txt"`,
		`try read-other "cat /store/run/../runs/` + victim + `/private.txt"`,
		`try results "echo x > /store/run/../../results/planted"`,
		`try root "echo x > /planted"`,
		`try tmp-escape "echo x > /tmp/../planted"`,
		`try runner "echo x > /expsync/expsync"`,
		`ln -s ../runs/` + victim + `/private.txt /store/run/victim-link`,
		`ln -s /store/run/../../results /store/run/results-link`,
		`ls -a /store > out/store-listing.txt`,
	}, "; ")
	runs := h.plan(experiment("escape", script, "  outputs: [out/attempts.txt, out/store-listing.txt]\n"))
	before := listTree(t, h.storeDir)
	p := h.startController(nil)
	res, err := p.executor.Execute(h.ctx, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	attempts := readOutput(t, h, res, "out/attempts.txt")
	if strings.Contains(attempts, "SUCCEEDED") || strings.Count(attempts, "denied") != 9 {
		t.Errorf("attempts of the hostile command:\n%s", attempts)
	}
	if listing := readOutput(t, h, res, "out/store-listing.txt"); strings.TrimSpace(strings.ReplaceAll(listing, "\n", " ")) != ". .. run" {
		t.Errorf("the pod sees %q under /store, want its prefix alone", listing)
	}
	// Outside the run's own prefix (removed once collected) and the
	// objects collected into results/, nothing changed on the host.
	after := listTree(t, h.storeDir)
	for path, size := range after {
		if strings.HasPrefix(path, "results/") {
			continue
		}
		if was, ok := before[path]; !ok || was != size {
			t.Errorf("%s appeared or changed on the host", path)
		}
	}
	if got, _ := os.ReadFile(victimFile); string(got) != "victim\n" {
		t.Errorf("another run's prefix changed: %q", got)
	}
	for path := range after {
		if strings.Contains(path, "planted") || strings.Contains(path, "escape") && !strings.HasPrefix(path, "inputs/") {
			t.Errorf("%s was written", path)
		}
	}
}

// readOutput reads a collected output from the controller's store.
func readOutput(t *testing.T, h *jobsHarness, res *contract.Result, path string) string {
	t.Helper()
	for _, o := range res.Outputs {
		if o.Path == path {
			rc, err := h.storage.Store().Open(h.ctx, o.SHA256)
			if err != nil {
				t.Fatal(err)
			}
			defer rc.Close()
			b, _ := io.ReadAll(rc)
			return string(b)
		}
	}
	t.Fatalf("no output %s among %+v", path, res.Outputs)
	return ""
}

// listTree lists the files under root with their sizes.
func listTree(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[filepath.ToSlash(rel)] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestWrongImageDigest: the node reports that it ran another digest than
// the one the experiment pins: the run fails, saying so.
func TestWrongImageDigest(t *testing.T) {
	other := "docker.io/library/busybox@sha256:" + strings.Repeat("6", 64)
	h := newJobsHarness(t, "jobs-digest", standin.Hooks{ImageID: func(_ *corev1.Pod, container string) string {
		if container == render.MainContainerName {
			return other
		}
		return ""
	}})
	runs := h.plan(experiment("digest", `mkdir -p out && echo hi > out/x`, "  outputs: [out/x]\n"))
	p := h.startController(nil)
	res, err := p.executor.Execute(h.ctx, runs[0])
	if err != nil {
		t.Fatal(err)
	}
	if res.Status != contract.Failed || !strings.Contains(res.Error, other) || len(res.Outputs) != 0 {
		t.Fatalf("status %s, error %q, outputs %v; want Failed naming the digest that ran", res.Status, res.Error, res.Outputs)
	}
}

// TestEvictedPodRetriesToOneResult: the first pod is evicted mid-run (the
// Eviction API, which marks it DisruptionTarget); the Job's
// podFailurePolicy ignores it and the Job controller makes a second pod,
// whose result is the run's one result. One Job was created, once.
func TestEvictedPodRetriesToOneResult(t *testing.T) {
	evicted := make(chan *corev1.Pod, 1)
	var first atomic.Bool
	hooks := standin.Hooks{BeforeContainer: func(ctx context.Context, pod *corev1.Pod, container string) {
		if container == render.MainContainerName && first.CompareAndSwap(false, true) {
			evicted <- pod
			<-ctx.Done() // held until the eviction deletes it
		}
	}}
	h := newJobsHarness(t, "jobs-evicted", hooks)
	runs := h.plan(experiment("evicted", `mkdir -p out && echo done > out/x`, "  outputs: [out/x]\n"))
	p := h.startController(nil)
	done := executeAsync(h.ctx, p, runs[0])
	pod := waitPodOnce(t, evicted)
	err := h.clientset.PolicyV1().Evictions(h.ns).Evict(h.ctx, &policyv1.Eviction{ObjectMeta: metav1.ObjectMeta{Name: pod.Name, Namespace: h.ns}})
	if err != nil {
		t.Fatalf("evict: %v", err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Succeeded {
		t.Fatalf("after an eviction: %+v, %v", res, err)
	}
	if n := p.requests.Snapshot()["POST jobs"]; n != 1 {
		t.Errorf("%d Jobs created, want 1", n)
	}
	if cached, err := runner.LoadResult(h.ctx, h.storage.Store(), runs[0].ID); err != nil || cached.Status != contract.Succeeded {
		t.Errorf("run cache: %+v, %v", cached, err)
	}
}

func waitPodOnce(t *testing.T, ch chan *corev1.Pod) *corev1.Pod { return waitPod(t, ch) }

// TestLostNodeRetriesToOneResult: the node running the first pod dies (its
// processes killed, nothing reported); the pod garbage collector marks the
// pod failed and disrupted and removes it, as it does for a node that is
// gone. The Job makes a second pod; one result.
func TestLostNodeRetriesToOneResult(t *testing.T) {
	lost := make(chan *corev1.Pod, 1)
	var first atomic.Bool
	var h *jobsHarness
	hooks := standin.Hooks{BeforeContainer: func(ctx context.Context, pod *corev1.Pod, container string) {
		if container == render.MainContainerName && first.CompareAndSwap(false, true) {
			lost <- pod
			<-ctx.Done()
		}
	}}
	h = newJobsHarness(t, "jobs-node-lost", hooks)
	runs := h.plan(experiment("lost", `mkdir -p out && echo done > out/x`, "  outputs: [out/x]\n"))
	p := h.startController(nil)
	done := executeAsync(h.ctx, p, runs[0])
	pod := waitPodOnce(t, lost)
	h.kubelet.LoseNode(pod.UID)
	// What the pod garbage collector does for a pod on a node that is gone.
	cur, err := h.clientset.CoreV1().Pods(h.ns).Get(h.ctx, pod.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cur.Status.Phase = corev1.PodFailed
	cur.Status.Conditions = append(cur.Status.Conditions, corev1.PodCondition{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue,
		Reason: "DeletionByPodGC", Message: "PodGC: node no longer exists", LastTransitionTime: metav1.Now()})
	if _, err := h.clientset.CoreV1().Pods(h.ns).UpdateStatus(h.ctx, cur, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := h.clientset.CoreV1().Pods(h.ns).Delete(h.ctx, pod.Name, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Succeeded {
		t.Fatalf("after the node was lost: %+v, %v", res, err)
	}
	if n := p.requests.Snapshot()["POST jobs"]; n != 1 {
		t.Errorf("%d Jobs created, want 1", n)
	}
}
