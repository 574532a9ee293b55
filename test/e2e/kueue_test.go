package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
)

// TestKueueAdmitsRunsWithinItsQuota: Kueue for real — its controller
// (built from the module proxy, hack/cluster/build-kueue.sh) installed with
// its own Helm chart (webhooks, internal certificates, RBAC), a
// ClusterQueue whose CPU quota fits two runs, a LocalQueue, and an
// ExperimentRepository whose runs default to that queue. A commit of six
// runs: every run's Job is created suspended and unsuspended by Kueue
// (admission), never more than two run pods are active at once, and every
// result is committed back with the queue and its wait recorded.
func TestKueueAdmitsRunsWithinItsQuota(t *testing.T) {
	n := realNode(t)
	chart := os.Getenv("EXPSYNC_KUEUE_CHART")
	if chart == "" {
		// Issue 10's Kueue item is NOT proven by make e2e yet: this test was
		// written without a node run (Kueue's build took the session), so
		// Kueue is built only on request. See docs/real-cluster.md.
		t.Skip("Kueue is not built: EXPSYNC_CLUSTER_KUEUE=1 hack/cluster/up (or hack/cluster/build-kueue.sh ~/.cache/expsync/kueue && hack/cluster/cluster.sh images) names its chart in the env file")
	}
	version, err := os.ReadFile(filepath.Join(filepath.Dir(chart), "version"))
	if err != nil {
		t.Fatal(err)
	}
	n.installKueue(t, chart, strings.TrimSpace(string(version)))

	const quotaCPU, runCPU, runs = "200m", "100m", 6
	var queue string
	l := n.newLab(t, "queued", func(er *v1alpha1.ExperimentRepository) {
		queue = "runs"
		er.Spec.Execution.Queue = queue
	})
	n.queues(t, l.ns, queue, quotaCPU)
	active := n.watchActivePods(t, l.ns)
	suspends := n.watchSuspends(t, l.ns)

	dir := t.TempDir()
	seeds := make([]string, runs)
	for i := range seeds {
		seeds[i] = fmt.Sprint(i + 1)
	}
	yaml := fmt.Sprintf(`apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: queued}
spec:
  image: %s
  command: [sh, -c, "sleep 5; mkdir -p out && echo {{params.seed}} > out/ok"]
  sweep: {matrix: {seed: [%s]}}
  outputs: [out/ok]
  resources: {cpu: %s, memory: 64Mi}
  timeout: 2m
`, n.busyboxImage, strings.Join(seeds, ", "), runCPU)
	if err := os.MkdirAll(filepath.Join(dir, "experiments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "experiments", "queued.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	ids := n.plannedRuns(t, dir)
	if len(ids) != runs {
		t.Fatalf("%d runs planned, want %d", len(ids), runs)
	}
	started := time.Now()
	l.push("six queued runs", dir)
	byID := l.waitResults(ids, 10*time.Minute)
	took := time.Since(started)

	for _, id := range ids {
		r := byID[id]
		if r.Status != "Succeeded" {
			t.Errorf("run %s: %s (%s)", id, r.Status, r.Reason)
		}
		if r.Queue == nil || r.Queue.Name != queue || r.Queue.AdmittedAt.IsZero() {
			t.Errorf("run %s: run.json records no admission by queue %q: %+v", id, queue, r.Queue)
		}
	}
	jobs := suspends.jobs()
	if len(jobs) < runs {
		t.Errorf("%d Jobs seen, want %d", len(jobs), runs)
	}
	for name, s := range jobs {
		if !s.createdSuspended || !s.resumed {
			t.Errorf("Job %s: created suspended %v, unsuspended later %v: Kueue did not admit it", name, s.createdSuspended, s.resumed)
		}
	}
	maxActive := active.max()
	t.Logf("%d runs of %s CPU under a %s quota: at most %d run pods active at once; push → all results %s", runs, runCPU, quotaCPU, maxActive, took.Round(time.Second))
	if maxActive > 2 {
		t.Errorf("%d run pods were active at once; the quota fits 2", maxActive)
	}
	if maxActive < 1 {
		t.Error("no run pod was seen active")
	}
	waits := make([]string, 0, len(ids))
	for _, id := range ids {
		if q := byID[id].Queue; q != nil {
			waits = append(waits, fmt.Sprintf("%.0fs", q.WaitSeconds))
		}
	}
	t.Logf("queue waits recorded in run.json: %s", strings.Join(waits, " "))
	l.verify()
}

// installKueue installs Kueue's chart (its CRDs, webhooks, RBAC and the
// controller with its internal certificates) with the local image, only
// the batch/job integration (the pod integration's webhook would see every
// pod of the node), and waits until it is Current.
func (n *node) installKueue(t testing.TB, chart, version string) {
	t.Helper()
	ns := n.namespace(t, "kueue-system")
	n.helmInstall(t, "kueue", ns, chart, fmt.Sprintf(`controllerManager:
  manager:
    image: {repository: expsync.local/kueue, tag: %q, pullPolicy: Never}
    resources:
      requests: {cpu: 50m, memory: 128Mi}
      limits: {cpu: "1", memory: 512Mi}
managerConfig:
  controllerManagerConfigYaml: |-
    apiVersion: config.kueue.x-k8s.io/v1beta2
    kind: Configuration
    health: {healthProbeBindAddress: ":8081"}
    metrics: {bindAddress: ":8443"}
    webhook: {port: 9443}
    leaderElection: {leaderElect: false}
    integrations:
      frameworks: ["batch/job"]
`, version))
}

// queues makes a ResourceFlavor, a ClusterQueue with cpu quota open to ns
// alone, and the LocalQueue name of ns pointing at it (removed at the end).
func (n *node) queues(t testing.TB, ns, name, cpu string) {
	t.Helper()
	ctx := context.Background()
	objs := []map[string]any{
		{"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ResourceFlavor", "metadata": map[string]any{"name": ns}},
		{"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "ClusterQueue", "metadata": map[string]any{"name": ns},
			"spec": map[string]any{
				"namespaceSelector": map[string]any{"matchLabels": map[string]any{"kubernetes.io/metadata.name": ns}},
				"resourceGroups": []any{map[string]any{
					"coveredResources": []any{"cpu", "memory"},
					"flavors": []any{map[string]any{"name": ns, "resources": []any{
						map[string]any{"name": "cpu", "nominalQuota": cpu},
						map[string]any{"name": "memory", "nominalQuota": "4Gi"},
					}}},
				}},
			}},
		{"apiVersion": "kueue.x-k8s.io/v1beta2", "kind": "LocalQueue", "metadata": map[string]any{"name": name, "namespace": ns},
			"spec": map[string]any{"clusterQueue": ns}},
	}
	for _, o := range objs {
		u := &unstructured.Unstructured{Object: o}
		// Kueue's webhook may still be starting: retry a refusal.
		waitFor(t, 2*time.Minute, "create "+u.GetKind()+" "+u.GetName(), func() (bool, error) {
			err := n.ctl.Create(ctx, u.DeepCopy())
			return err == nil, err
		})
		t.Cleanup(func() { _ = n.ctl.Delete(context.Background(), u) })
	}
}

// activePods tracks the pods of Jobs in a namespace that are neither
// finished nor deleted, and the most seen at once.
type activePods struct {
	mu     sync.Mutex
	active map[string]bool
	most   int
}

func (a *activePods) max() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.most
}

func (n *node) watchActivePods(t testing.TB, ns string) *activePods {
	t.Helper()
	a := &activePods{active: map[string]bool{}}
	n.follow(t, func(ctx context.Context, rv string) (watch.Interface, error) {
		return n.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	}, func(ev watch.Event) string {
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return ""
		}
		if pod.Labels["batch.kubernetes.io/job-name"] == "" || pod.Labels[render.LabelRunID] == "" {
			return pod.ResourceVersion
		}
		a.mu.Lock()
		defer a.mu.Unlock()
		done := ev.Type == watch.Deleted || pod.DeletionTimestamp != nil ||
			pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
		if done {
			delete(a.active, pod.Name)
		} else {
			a.active[pod.Name] = true
		}
		a.most = max(a.most, len(a.active))
		return pod.ResourceVersion
	})
	return a
}

// suspendLog records, per Job, whether it was created suspended and later
// seen unsuspended.
type suspendLog struct {
	mu  sync.Mutex
	all map[string]*suspendState
}

type suspendState struct{ createdSuspended, resumed bool }

func (s *suspendLog) jobs() map[string]suspendState {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]suspendState{}
	for k, v := range s.all {
		out[k] = *v
	}
	return out
}

func (n *node) watchSuspends(t testing.TB, ns string) *suspendLog {
	t.Helper()
	s := &suspendLog{all: map[string]*suspendState{}}
	n.follow(t, func(ctx context.Context, rv string) (watch.Interface, error) {
		return n.client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	}, func(ev watch.Event) string {
		job, ok := ev.Object.(*batchv1.Job)
		if !ok {
			return ""
		}
		suspended := job.Spec.Suspend != nil && *job.Spec.Suspend
		s.mu.Lock()
		defer s.mu.Unlock()
		st := s.all[job.Name]
		if st == nil {
			st = &suspendState{createdSuspended: suspended}
			s.all[job.Name] = st
		}
		if st.createdSuspended && !suspended {
			st.resumed = true
		}
		return job.ResourceVersion
	})
	return s
}
