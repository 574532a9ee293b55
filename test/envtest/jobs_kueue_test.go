package envtest_test

import (
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
)

// kueueCRDs installs Kueue's CRDs (sigs.k8s.io/kueue v0.17.0, put next to
// the envtest binaries by hack/envtest/kueue-crds.sh) once.
var kueueCRDs struct {
	sync.Once
	err error
}

func installKueue(t *testing.T) {
	t.Helper()
	cfg := apiServer(t)
	kueueCRDs.Do(func() {
		dir := filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "..", "kueue-crds")
		if _, err := os.Stat(filepath.Join(dir, "kueue.x-k8s.io_workloads.yaml")); err != nil {
			kueueCRDs.err = err
			return
		}
		// MaxTime: envtest's default (10 s) for the CRDs to be served ran
		// out in CI on a loaded machine; the wait ends as soon as they are.
		_, kueueCRDs.err = envtest.InstallCRDs(cfg, envtest.CRDInstallOptions{Paths: []string{dir}, ErrorIfPathMissing: true, MaxTime: 2 * time.Minute})
	})
	if kueueCRDs.err != nil {
		t.Fatalf("install Kueue's CRDs (make envtest puts them in $KUBEBUILDER_ASSETS/../kueue-crds): %v", kueueCRDs.err)
	}
}

var workloads = schema.GroupVersionResource{Group: "kueue.x-k8s.io", Version: "v1beta2", Resource: "workloads"}

// TestKueueQueueWait: a run naming a queue gets a suspended Job with
// Kueue's queue label and no pod until admitted. The test plays Kueue:
// after a wait it makes the Job's Workload, admits it and resumes the Job.
// The result records the queue and the admission time, from the Workload.
func TestKueueQueueWait(t *testing.T) {
	installKueue(t)
	h := newJobsHarness(t, "jobs-kueue", standin.Hooks{})
	runs := h.plan(experiment("queued", `true`, "  queue: research\n"))
	dyn, err := dynamic.NewForConfig(h.cfg)
	if err != nil {
		t.Fatal(err)
	}
	p := h.startController(nil)
	done := executeAsync(h.ctx, p, runs[0])
	var job batchv1.Job
	h.eventually("the suspended Job", time.Minute, func() bool {
		jobs := h.jobs()
		if len(jobs) == 1 {
			job = jobs[0]
		}
		return len(jobs) == 1
	})
	if job.Labels[render.LabelKueueQueue] != "research" || job.Spec.Suspend == nil || !*job.Spec.Suspend {
		t.Fatalf("Job labels %v, suspend %v: want Kueue's queue label and suspended", job.Labels, job.Spec.Suspend)
	}
	const queueWait = 2 * time.Second
	time.Sleep(queueWait)
	if pods := h.pods(); len(pods) != 0 {
		t.Fatalf("%d pods of a Job Kueue has not admitted", len(pods))
	}

	// Kueue's part: the Workload, its admission, the Job resumed.
	wl := &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "Workload",
		"metadata": map[string]any{
			"name": "job-" + job.Name, "namespace": h.ns,
			"labels": map[string]any{"kueue.x-k8s.io/job-uid": string(job.UID)},
			"ownerReferences": []any{map[string]any{"apiVersion": "batch/v1", "kind": "Job", "name": job.Name,
				"uid": string(job.UID), "controller": true}},
		},
		"spec": map[string]any{
			"queueName": "research",
			"podSets": []any{map[string]any{"name": "main", "count": int64(1),
				"template": map[string]any{"spec": map[string]any{"containers": []any{
					map[string]any{"name": "run", "image": busybox}}}}}},
		},
	}}
	created, err := dyn.Resource(workloads).Namespace(h.ns).Create(h.ctx, wl, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("create the Workload: %v", err)
	}
	admitted := time.Now().UTC().Truncate(time.Second)
	cond := func(typ string) map[string]any {
		return map[string]any{"type": typ, "status": "True", "reason": "Admitted", "message": "admitted by the test",
			"lastTransitionTime": admitted.Format(time.RFC3339)}
	}
	_ = unstructured.SetNestedSlice(created.Object, []any{cond("QuotaReserved"), cond("Admitted")}, "status", "conditions")
	if _, err := dyn.Resource(workloads).Namespace(h.ns).UpdateStatus(h.ctx, created, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("admit the Workload: %v", err)
	}
	if _, err := h.clientset.BatchV1().Jobs(h.ns).Patch(h.ctx, job.Name, types.MergePatchType, []byte(`{"spec":{"suspend":false}}`), metav1.PatchOptions{}); err != nil {
		t.Fatalf("resume the Job: %v", err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Succeeded {
		t.Fatalf("%+v, %v", res, err)
	}
	if res.Queue != "research" || !res.AdmittedAt.Equal(admitted) {
		t.Errorf("queue %q admitted at %s, want research at %s", res.Queue, res.AdmittedAt, admitted)
	}
	if w := res.AdmittedAt.Sub(res.QueuedAt); w < queueWait-time.Second {
		t.Errorf("queue wait %s, want at least %s", w, queueWait-time.Second)
	}
}
