package envtest_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/executor/kube"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
)

// TestControllerRestartAdoptsTheJob: a controller process creates a run's
// Job and stops (its informers gone, its Execute cancelled as a shutdown
// cancels it) while the pod runs. A new process executes the same run: it
// finds the Job in its cache and adopts it — no second Job — and collects
// the run's one result.
func TestControllerRestartAdoptsTheJob(t *testing.T) {
	hooks, reached, release := holdRun()
	h := newJobsHarness(t, "jobs-restart", hooks)
	runs := h.plan(experiment("restart", `mkdir -p out && echo once >> out/x`, "  outputs: [out/x]\n"))
	first := h.startController(nil)
	ctx, stop := context.WithCancelCause(h.ctx)
	done := executeAsync(ctx, first, runs[0])
	waitPod(t, reached)
	stop(errors.New("the controller is shutting down"))
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Cancelled {
		t.Fatalf("the stopped process's Execute: %+v, %v", res, err)
	}
	first.stop()
	if jobs := h.jobs(); len(jobs) != 1 || jobs[0].DeletionTimestamp != nil {
		t.Fatalf("a shutdown must leave the Job running: %d Jobs", len(jobs))
	}

	second := h.startController(nil)
	done = executeAsync(h.ctx, second, runs[0])
	close(release)
	res, err = wait(t, done)
	if err != nil || res.Status != contract.Succeeded {
		t.Fatalf("the restarted process's Execute: %+v, %v", res, err)
	}
	if got := readOutput(t, h, res, "out/x"); got != "once\n" {
		t.Errorf("output %q: the command ran more than once", got)
	}
	if n := first.requests.Snapshot()["POST jobs"] + second.requests.Snapshot()["POST jobs"]; n != 1 {
		t.Errorf("%d Jobs created across the restart, want 1 (first: %s; second: %s)", n, first.requests, second.requests)
	}
	if n := second.requests.Snapshot()["POST jobs"]; n != 0 {
		t.Errorf("the restarted process created %d Jobs", n)
	}
}

// TestFinishedJobCollectedAfterRestart: the run ends while no controller
// runs; the next process adopts the finished Job and collects it.
func TestFinishedJobCollectedAfterRestart(t *testing.T) {
	hooks, reached, release := holdRun()
	h := newJobsHarness(t, "jobs-finished-alone", hooks)
	runs := h.plan(experiment("alone", `mkdir -p out && echo x > out/x`, "  outputs: [out/x]\n"))
	first := h.startController(nil)
	ctx, stop := context.WithCancelCause(h.ctx)
	done := executeAsync(ctx, first, runs[0])
	waitPod(t, reached)
	stop(errors.New("shutdown"))
	wait(t, done)
	first.stop()
	close(release)
	h.eventually("the Job to complete", time.Minute, func() bool {
		jobs := h.jobs()
		return len(jobs) == 1 && jobComplete(&jobs[0])
	})
	second := h.startController(nil)
	// Prune leaves a finished Job whose result is not collected yet.
	if n, err := second.executor.Prune(h.ctx, map[string]bool{runs[0].ID: true}); err != nil || n != 0 {
		t.Fatalf("Prune deleted %d (%v) before the result was collected", n, err)
	}
	res, err := second.executor.Execute(h.ctx, runs[0])
	if err != nil || res.Status != contract.Succeeded || len(res.Outputs) != 1 {
		t.Fatalf("collecting after a restart: %+v, %v", res, err)
	}
}

func jobComplete(job *batchv1.Job) bool {
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobComplete && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// TestSupersededRunDeletesItsJob: cancelling a run with ErrSuperseded (a
// newer commit edited its experiment) deletes its Job; any other
// cancellation leaves the Job, and Prune deletes an in-flight Job no plan
// keeps.
func TestSupersededRunDeletesItsJob(t *testing.T) {
	hooks, reached, _ := holdRun()
	h := newJobsHarness(t, "jobs-superseded", hooks)
	runs := h.plan(map[string]string{
		"experiments/a.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: a}\nspec:\n  image: " + busybox + "\n  command: [sh, -c, 'true']\n  sweep: {matrix: {n: [1, 2]}}\n",
	})
	p := h.startController(nil)
	ctx1, cancel1 := context.WithCancelCause(h.ctx)
	ctx2, cancel2 := context.WithCancelCause(h.ctx)
	done1, done2 := executeAsync(ctx1, p, runs[0]), executeAsync(ctx2, p, runs[1])
	waitPod(t, reached)
	waitPod(t, reached)
	cancel1(kube.ErrSuperseded)
	cancel2(errors.New("suspended"))
	if res, err := wait(t, done1); err != nil || res.Status != contract.Cancelled || !strings.Contains(res.Error, "deleted") {
		t.Errorf("superseded: %+v, %v", res, err)
	}
	if res, err := wait(t, done2); err != nil || res.Status != contract.Cancelled || !strings.Contains(res.Error, "left running") {
		t.Errorf("suspended: %+v, %v", res, err)
	}
	name0, _ := render.JobName(runs[0].Experiment, runs[0].ID)
	name1, _ := render.JobName(runs[1].Experiment, runs[1].ID)
	h.eventually("the superseded run's Job to go", time.Minute, func() bool {
		jobs := h.jobs()
		return len(jobs) == 1 && jobs[0].Name == name1 && jobs[0].Name != name0
	})
	// After a restart, the second run's experiment is edited: no plan
	// keeps it, and Prune deletes its Job.
	q := h.startController(nil)
	n, err := q.executor.Prune(h.ctx, map[string]bool{})
	if err != nil || n != 1 {
		t.Fatalf("Prune deleted %d Jobs (%v), want 1", n, err)
	}
	h.eventually("the pruned Job to go", time.Minute, func() bool { return len(h.jobs()) == 0 })
	// The prefixes the deleted Jobs leave are orphans once old enough.
	defer func(age time.Duration) { kube.OrphanPrefixAge = age }(kube.OrphanPrefixAge)
	kube.OrphanPrefixAge = 0
	h.eventually("the runs' prefixes to go", time.Minute, func() bool {
		n, _ := q.executor.Prune(h.ctx, map[string]bool{})
		return n == 0 && !h.prefixExists(runs[0].ID) && !h.prefixExists(runs[1].ID)
	})
}

// TestJobDeletedByAUser: someone deletes a run's Job mid-run. The run ends
// Errored without a result (the engine holds it and runs it again);
// nothing is cached.
func TestJobDeletedByAUser(t *testing.T) {
	hooks, reached, _ := holdRun()
	h := newJobsHarness(t, "jobs-user-delete", hooks)
	runs := h.plan(experiment("deleted", `true`, ""))
	p := h.startController(nil)
	done := executeAsync(h.ctx, p, runs[0])
	waitPod(t, reached)
	job := h.jobs()[0]
	if err := h.clientset.BatchV1().Jobs(h.ns).Delete(h.ctx, job.Name, metav1.DeleteOptions{PropagationPolicy: ptr.To(metav1.DeletePropagationBackground)}); err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Errored || !strings.Contains(res.Error, "was deleted") {
		t.Fatalf("%+v, %v", res, err)
	}
	if _, err := runner.LoadResult(h.ctx, h.storage.Store(), runs[0].ID); err == nil {
		t.Errorf("a result was cached for a run whose Job was deleted")
	}
}

// TestNamespaceDeletedMidRun: the repository's namespace goes while a run
// waits: the run ends without a result, and a new Execute is refused
// cleanly, not retried forever.
func TestNamespaceDeletedMidRun(t *testing.T) {
	hooks, reached, _ := holdRun()
	h := newJobsHarness(t, "jobs-ns-delete", hooks)
	runs := h.plan(experiment("ns", `echo {{params.n}}`, "  sweep: {matrix: {n: [1, 2]}}\n"))
	p := h.startController(nil)
	done := executeAsync(h.ctx, p, runs[0])
	waitPod(t, reached)
	if err := h.clientset.CoreV1().Namespaces().Delete(h.ctx, h.ns, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Errored {
		t.Fatalf("%+v, %v", res, err)
	}
	ctx, cancel := context.WithTimeout(h.ctx, time.Minute)
	defer cancel()
	_, err = p.executor.Execute(ctx, runs[1])
	if err == nil || ctx.Err() != nil || !strings.Contains(err.Error(), h.ns) {
		t.Errorf("a run in a namespace being deleted: %v (want an error naming the namespace)", err)
	}
}

// TestNameCollision: the Job name of a run is held by a Job of another run
// (or one expsync did not make): Execute refuses with NameCollisionError
// and never touches that Job.
func TestNameCollision(t *testing.T) {
	h := newJobsHarness(t, "jobs-collision", standin.Hooks{})
	runs := h.plan(experiment("collide", `true`, ""))
	name, _ := render.JobName(runs[0].Experiment, runs[0].ID)
	other := strings.Repeat("0", 64)
	label, _ := render.RunIDLabelValue(other)
	squatter := &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: h.ns,
			Labels:      map[string]string{render.LabelManagedBy: render.ManagedBy, render.LabelRunID: label},
			Annotations: map[string]string{render.AnnotationRunID: other}},
		Spec: batchv1.JobSpec{Suspend: ptr.To(true), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			RestartPolicy: corev1.RestartPolicyNever,
			Containers:    []corev1.Container{{Name: "x", Image: busybox}},
		}}},
	}
	created, err := h.clientset.BatchV1().Jobs(h.ns).Create(h.ctx, squatter, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := h.startController(nil)
	_, err = p.executor.Execute(h.ctx, runs[0])
	var nc *kube.NameCollisionError
	if !errors.As(err, &nc) || nc.Holder != other || !strings.Contains(err.Error(), "kubectl delete job") {
		t.Fatalf("Execute = %v, want a NameCollisionError naming run %s", err, other)
	}
	if jobs := h.jobs(); len(jobs) != 1 || jobs[0].UID != created.UID {
		t.Errorf("the colliding Job was touched")
	}
}

// TestQuotaRefusals: a ResourceQuota on the number of Jobs refuses the
// Job: Execute returns a QuotaError naming the quota (the engine holds the
// run). A quota on CPU lets the Job in but refuses its pods: QuotaRefusal
// names it while the run waits, and the run goes on once the quota grows.
func TestQuotaRefusals(t *testing.T) {
	h := newJobsHarness(t, "jobs-quota", standin.Hooks{})
	runs := h.plan(experiment("quota", `true`, "  resources: {cpu: \"1\", memory: 64Mi}\n"))
	quotas := h.clientset.CoreV1().ResourceQuotas(h.ns)
	if _, err := quotas.Create(h.ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "no-jobs"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{"count/jobs.batch": resource.MustParse("0")}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	h.eventually("the quota controller to count", time.Minute, func() bool {
		q, err := quotas.Get(h.ctx, "no-jobs", metav1.GetOptions{})
		return err == nil && len(q.Status.Hard) > 0
	})
	p := h.startController(nil)
	_, err := p.executor.Execute(h.ctx, runs[0])
	var qe *kube.QuotaError
	if !errors.As(err, &qe) || qe.Quota != "no-jobs" || qe.Pods {
		t.Fatalf("Execute = %v, want a QuotaError naming no-jobs", err)
	}
	if r := p.executor.QuotaRefusal(); r == nil || r.Quota != "no-jobs" {
		t.Errorf("QuotaRefusal() = %v", r)
	}
	if err := quotas.Delete(h.ctx, "no-jobs", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	_, err = quotas.Create(h.ctx, &corev1.ResourceQuota{ObjectMeta: metav1.ObjectMeta{Name: "small-cpu"},
		Spec: corev1.ResourceQuotaSpec{Hard: corev1.ResourceList{corev1.ResourceRequestsCPU: resource.MustParse("500m")}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.eventually("the quota controller to count", time.Minute, func() bool {
		q, err := quotas.Get(h.ctx, "small-cpu", metav1.GetOptions{})
		return err == nil && len(q.Status.Hard) > 0
	})
	done := executeAsync(h.ctx, p, runs[0])
	h.eventually("the pods' refusal to be reported", 2*time.Minute, func() bool {
		r := p.executor.QuotaRefusal()
		return r != nil && r.Quota == "small-cpu" && r.Pods
	})
	q, _ := quotas.Get(h.ctx, "small-cpu", metav1.GetOptions{})
	q.Spec.Hard[corev1.ResourceRequestsCPU] = resource.MustParse("2")
	if _, err := quotas.Update(h.ctx, q, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	res, err := wait(t, done)
	if err != nil || res.Status != contract.Succeeded {
		t.Fatalf("once the quota grew: %+v, %v", res, err)
	}
	if r := p.executor.QuotaRefusal(); r != nil {
		t.Errorf("QuotaRefusal() = %v after the run got its pod", r)
	}
}

// TestStuckPodEnds: a run naming a Secret that does not exist can never
// start its container; after StuckAfter the run ends as an infrastructure
// error (held and tried again later by the engine) and its Job is deleted.
func TestStuckPodEnds(t *testing.T) {
	h := newJobsHarness(t, "jobs-stuck", standin.Hooks{})
	runs := h.plan(experiment("stuck", `true`, "  env: [{name: TOKEN, secretRef: {name: missing, key: token}}]\n"))
	p := h.startController(nil, func(o *kube.Options) { o.StuckAfter = 3 * time.Second })
	res, err := p.executor.Execute(h.ctx, runs[0])
	if err != nil || res.Status != contract.Errored || !strings.Contains(res.Error, "CreateContainerConfigError") {
		t.Fatalf("%+v, %v", res, err)
	}
	h.eventually("its Job to go", time.Minute, func() bool { return len(h.jobs()) == 0 })
}

// TestMaxInFlight: with MaxInFlight 1, a sweep's Jobs exist one at a time.
func TestMaxInFlight(t *testing.T) {
	hooks, reached, release := holdRun()
	h := newJobsHarness(t, "jobs-inflight", hooks)
	runs := h.plan(map[string]string{
		"experiments/s.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: s}\nspec:\n  image: " + busybox + "\n  command: [sh, -c, 'echo {{params.n}}']\n  sweep: {matrix: {n: [1, 2, 3]}}\n",
	})
	p := h.startController(func(r *kube.Repository) { r.MaxInFlight = 1 })
	var dones []chan execResult
	for _, run := range runs {
		dones = append(dones, executeAsync(h.ctx, p, run))
	}
	for range runs {
		waitPod(t, reached)
		if n := len(h.jobs()); n != 1 {
			t.Errorf("%d Jobs at once, MaxInFlight is 1", n)
		}
		release <- struct{}{}
	}
	for _, d := range dones {
		if res, err := wait(t, d); err != nil || res.Status != contract.Succeeded {
			t.Errorf("%+v, %v", res, err)
		}
	}
}
