package controller

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
)

const testRunnerImage = "ghcr.io/expsync/expsync@sha256:2222222222222222222222222222222222222222222222222222222222222222"

// startKubeController starts `expsync controller` as the command builds
// it (NewManager with executor/kube's cache options, KubeExecutors).
func startKubeController(t testing.TB, cfg *rest.Config, stateDir, storeRoot string) *controllerProcess {
	t.Helper()
	o := &Options{Concurrent: 2, restartable: true, MetricsAddr: "0", HealthAddr: "0", RunnerImage: testRunnerImage,
		StoreRoot: storeRoot, MaxInFlight: 100,
		Settings: Settings{StateDir: stateDir, BuilderID: "https://expsync.dev/builder/test",
			BatchInterval: 200 * time.Millisecond, ProgressInterval: 300 * time.Millisecond}}
	o.Client.QPS, o.Client.Burst = 50, 300
	mgr, err := NewManager(cfg, o, KubeExecutors())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r, err := Setup(ctx, mgr, o, KubeExecutors())
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &controllerProcess{reconciler: r, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- mgr.Start(ctx) }()
	t.Cleanup(p.stop)
	return p
}

func jobsOf(t testing.TB, c client.Client, ns string) []batchv1.Job {
	t.Helper()
	var list batchv1.JobList
	if err := c.List(context.Background(), &list, client.InNamespace(ns)); err != nil {
		t.Fatal(err)
	}
	sort.Slice(list.Items, func(i, j int) bool { return list.Items[i].Name < list.Items[j].Name })
	return list.Items
}

// TestControllerCreatesJobsOnce: a push becomes one Job per run in the
// object's namespace, owned by the object (garbage-collected with it,
// without a finalizer or blockOwnerDeletion); a controller killed and
// started again adopts them and creates none twice.
func TestControllerCreatesJobsOnce(t *testing.T) {
	f := newFixture(t, "jobs")
	f.lab.Commit("experiments", squareSweep("1, 2, 3"))
	f.create(time.Hour)
	cfg := apiServer(t)
	storeRoot := t.TempDir()
	p := startKubeController(t, cfg, f.state, storeRoot)
	// The claim is not mounted yet: Stalled with the path and what to do,
	// and nothing created on the controller's own disk.
	claimDir := filepath.Join(storeRoot, f.key.Namespace, "store")
	stalledObj := waitFor(t, f.c, f.key, "Stalled: store not mounted", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.IsStalled(o) && conditions.GetReason(o, meta.StalledCondition) == v1alpha1.StoreNotMountedReason &&
			kstatusOf(o) == kstatus.FailedStatus
	})
	if msg := conditions.GetMessage(stalledObj, meta.ReadyCondition); !strings.Contains(msg, claimDir) || !strings.Contains(msg, "mount") ||
		conditions.IsReady(stalledObj) || kstatusOf(stalledObj) != kstatus.FailedStatus {
		t.Errorf("store not mounted: %s, kstatus %s; want Ready=False naming %s and what to do, kstatus Failed", condString(stalledObj, "Ready"), kstatusOf(stalledObj), claimDir)
	}
	if _, err := os.Stat(claimDir); !os.IsNotExist(err) {
		t.Errorf("the controller created %s (%v): a store on its own disk no pod sees", claimDir, err)
	}
	if n := len(jobsOf(t, f.c, f.key.Namespace)); n != 0 {
		t.Errorf("%d Jobs while the store is not mounted", n)
	}
	if err := os.MkdirAll(claimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	f.update(func(o *v1alpha1.ExperimentRepository) {
		o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
	})
	waitJobs := func(n int) []batchv1.Job {
		t.Helper()
		deadline := time.Now().Add(2 * time.Minute)
		for {
			jobs := jobsOf(t, f.c, f.key.Namespace)
			if len(jobs) >= n {
				return jobs
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d Jobs after 2 minutes, want %d", len(jobs), n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	jobs := waitJobs(3)
	obj := waitFor(t, f.c, f.key, "Reconciling with 3 runs", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Running == 3
	})
	if kstatusReady(obj) || kstatusOf(obj) != kstatus.InProgressStatus {
		t.Errorf("runs in flight: %s, kstatus %s; want not Ready, InProgress", condString(obj, "Ready"), kstatusOf(obj))
	}
	for _, j := range jobs {
		refs := j.OwnerReferences
		if len(refs) != 1 || refs[0].UID != obj.UID || refs[0].Controller == nil || !*refs[0].Controller ||
			(refs[0].BlockOwnerDeletion != nil && *refs[0].BlockOwnerDeletion) {
			t.Errorf("Job %s owner references %+v: want the ExperimentRepository as controller, not blocking its deletion", j.Name, refs)
		}
		if j.Labels[render.LabelManagedBy] != render.ManagedBy {
			t.Errorf("Job %s labels %v", j.Name, j.Labels)
		}
	}
	if len(obj.Finalizers) != 0 {
		t.Errorf("finalizers %v: a controller that is gone would block the namespace's deletion", obj.Finalizers)
	}

	// Killed and started again: the same Jobs, no second of any.
	uids := map[string]string{}
	for _, j := range jobs {
		uids[j.Name] = string(j.UID)
	}
	p.stop()
	p = startKubeController(t, cfg, f.state, storeRoot)
	waitFor(t, f.c, f.key, "the restarted controller's status", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Running == 3
	})
	time.Sleep(2 * time.Second)
	after := jobsOf(t, f.c, f.key.Namespace)
	if len(after) != 3 {
		t.Errorf("%d Jobs after a restart, want the same 3", len(after))
	}
	for _, j := range after {
		if uids[j.Name] != string(j.UID) {
			t.Errorf("Job %s was created again after the restart", j.Name)
		}
	}
	// Deleted mid-run: the object is gone at once (no finalizer waits for
	// the controller), its workers stop and its Git cache is removed; its
	// Jobs go with it through their owner reference (the garbage
	// collector's work: envtest runs none, so they are only checked for
	// the reference above).
	r := p.reconciler
	if err := f.c.Delete(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		r.mu.Lock()
		_, known := r.repos[f.key]
		r.mu.Unlock()
		_, statErr := os.Stat(filepath.Join(f.state, string(obj.UID)))
		err := f.c.Get(context.Background(), f.key, &v1alpha1.ExperimentRepository{})
		if apierrors.IsNotFound(err) && !known && os.IsNotExist(statErr) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after deletion: get %v, engine still held %v, Git cache %v", err, known, statErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(jobsOf(t, f.c, f.key.Namespace)); n != 3 {
		t.Errorf("%d Jobs after the deletion, want the 3 (no new one)", n)
	}
	p.stop()
}
