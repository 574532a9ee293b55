package e2e_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

// TestControllerFromTheChart is the tier's main proof: expsync installed
// from its Helm chart (its RBAC, namespace mode) on the real node, a
// hostPath-backed claim as the store, an ExperimentRepository on a Git
// server the controller's pod reaches. In order, on one repository:
//
//  1. pushing the examples makes real pods run every planned run; the
//     results are committed back and `expsync verify --repo` passes on a
//     fresh clone;
//  2. a push changing one sweep value runs exactly the new point (one Job);
//  3. a pod deleted mid-run (what users see of a node failure) and the
//     controller killed mid-run (SIGKILL, its pod replaced) end in exactly
//     one result per run and one Job per run;
//  4. a run exceeding its memory limit is recorded as OOMKilled with the
//     limit it had.
func TestControllerFromTheChart(t *testing.T) {
	n := realNode(t)
	l := n.newLab(t, "ctl")
	examples := kubeExamples(t)

	// 1. The examples.
	planned := n.plannedRuns(t, examples)
	if len(planned) < 10 {
		t.Fatalf("expsync render plans %d runs of the examples; expected more than 10", len(planned))
	}
	started := time.Now()
	commit := l.push("examples", examples)
	got := l.waitResults(planned, 10*time.Minute)
	t.Logf("1. %d runs of the examples committed back %s after the push", len(planned), time.Since(started).Round(time.Second))
	for _, id := range planned {
		r := got[id]
		if r.Status != contract.Succeeded {
			t.Errorf("run %s (%s): %s exit %d: %s", id, r.folder, r.Status, r.ExitCode, r.Reason)
		}
		if r.Commit != commit {
			t.Errorf("run %s records commit %s, pushed %s", id, r.Commit, commit)
		}
	}
	if len(got) != len(planned) {
		t.Errorf("%d results on main, %d planned", len(got), len(planned))
	}
	l.assertOneJobEach(planned)
	l.assertPlannedJobs(planned)
	l.verify()
	if t.Failed() {
		l.logStatus()
		t.FailNow()
	}

	// 2. One sweep value changed: seed 3 of the pi example becomes 4.
	pi := filepath.Join(examples, "experiments", "pi", "pi.yaml")
	changed := replaceIn(t, examples, pi, "seed: [1, 2, 3]", "seed: [1, 2, 4]")
	plannedAfter := n.plannedRuns(t, changed)
	var fresh []string
	for _, id := range plannedAfter {
		if !slices.Contains(planned, id) {
			fresh = append(fresh, id)
		}
	}
	if len(fresh) != 1 {
		t.Fatalf("changing one seed plans %d new runs (%v); expected 1", len(fresh), fresh)
	}
	before := l.jobs.count()
	commit2 := l.push("pi: seed 3 -> 4", changed)
	all := append(slices.Clone(planned), fresh...)
	got = l.waitResults(all, 5*time.Minute)
	if r := got[fresh[0]]; r.Status != contract.Succeeded || r.Commit != commit2 {
		t.Errorf("the new point %s: %s at commit %s (pushed %s): %s", fresh[0], r.Status, r.Commit, commit2, r.Reason)
	}
	l.settle()
	after := l.jobs.count()
	for id, c := range after {
		if c != before[id] && id != fresh[0] {
			t.Errorf("run %s got a Job after the second push, but it was not a new point", id)
		}
	}
	if after[fresh[0]] != 1 {
		t.Errorf("the new point %s got %d Jobs; expected 1", fresh[0], after[fresh[0]])
	}
	if len(got) != len(all) {
		t.Errorf("%d results on main after the second push; expected %d", len(got), len(all))
	}
	t.Logf("2. the second push ran exactly the new point %s", fresh[0])

	// 3. Disruptions: three slow runs; one's pod is deleted while it runs,
	// then the controller is killed while they all run.
	slow := withExperiment(t, changed, "slow/slow.yaml", fmt.Sprintf(`apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: slow}
spec:
  image: %s
  command: [sh, -c, 'sleep 25; mkdir -p out; echo "$0" > out/seed', "{{params.seed}}"]
  sweep: {matrix: {seed: [1, 2, 3]}}
  outputs: [out/seed]
  timeout: 5m
`, n.busyboxImage))
	slowRuns := newRuns(n.plannedRuns(t, slow), all)
	if len(slowRuns) != 3 {
		t.Fatalf("the slow experiment plans %d new runs; expected 3", len(slowRuns))
	}
	l.push("slow runs", slow)
	victim := l.runningPod(slowRuns[0], 3*time.Minute)
	t.Logf("3. deleting pod %s of run %s while it runs", victim.Name, slowRuns[0])
	if err := n.client.CoreV1().Pods(l.ns).Delete(context.Background(), victim.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	l.runningPod(slowRuns[1], 2*time.Minute)
	l.killController()
	all = append(all, slowRuns...)
	got = l.waitResults(all, 6*time.Minute)
	l.settle()
	for _, id := range slowRuns {
		if r := got[id]; r.Status != contract.Succeeded {
			t.Errorf("slow run %s: %s exit %d: %s", id, r.Status, r.ExitCode, r.Reason)
		}
	}
	// The run whose pod was deleted may run again in a new Job (the
	// executor gives up a Job whose pod someone deleted), but never while
	// the first still exists; every other run, the controller's restart
	// included, has its one Job.
	counts := l.jobs.count()
	t.Logf("3. the run whose pod was deleted had %d Job(s)", counts[slowRuns[0]])
	if c := counts[slowRuns[0]]; c < 1 || c > 2 {
		t.Errorf("the run whose pod was deleted got %d Jobs; expected 1, or 2 one after the other", c)
	}
	if o := l.jobs.overlaps(slowRuns[0]); o != "" {
		t.Errorf("the run whose pod was deleted executed twice at once: %s", o)
	}
	l.assertOneJobEach(slices.DeleteFunc(slices.Clone(all), func(id string) bool { return id == slowRuns[0] }))
	if len(got) != len(all) {
		t.Errorf("%d results on main after the disruptions; expected %d (one per run)", len(got), len(all))
	}

	// 4. Over its memory limit: python allocates 256 MiB under 48 Mi.
	oom := withExperiment(t, slow, "oom/oom.yaml", fmt.Sprintf(`apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: greedy}
spec:
  image: %s
  command: [python3, -c, 'b = bytearray(256 * 1024 * 1024); print(len(b))']
  resources: {cpu: 100m, memory: 48Mi}
  timeout: 2m
  retries: {limit: 0}
`, n.pythonImage))
	oomRuns := newRuns(n.plannedRuns(t, oom), all)
	if len(oomRuns) != 1 {
		t.Fatalf("the greedy experiment plans %d new runs; expected 1", len(oomRuns))
	}
	l.push("greedy run", oom)
	all = append(all, oomRuns...)
	got = l.waitResults(all, 4*time.Minute)
	r := got[oomRuns[0]]
	t.Logf("4. the greedy run: %s exit %d, reason %q, requests.memory %s", r.Status, r.ExitCode, r.Reason, r.Requests.Memory)
	if r.Status != contract.Failed || !strings.Contains(r.Reason, "memory limit") || !strings.Contains(r.Reason, "48Mi") {
		t.Errorf("the greedy run is recorded as %s: %q; expected Failed, killed for exceeding its memory limit (48Mi)", r.Status, r.Reason)
	}
	l.assertOneJobEach(oomRuns)
	l.assertPlannedJobs(all)
	l.verify()
}

// newRuns is planned minus known.
func newRuns(planned, known []string) []string {
	var out []string
	for _, id := range planned {
		if !slices.Contains(known, id) {
			out = append(out, id)
		}
	}
	return out
}

// replaceIn copies dir and replaces old by new in one of its files (named
// by its path under dir); the file must contain old.
func replaceIn(t testing.TB, dir, file, old, new string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(out, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(dir, file)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, rel)
	data, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), old) {
		t.Fatalf("%s has no %q", rel, old)
	}
	if err := os.WriteFile(p, []byte(strings.Replace(string(data), old, new, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// assertOneJobEach fails unless each run got exactly one Job over the
// whole test.
func (l *lab) assertOneJobEach(ids []string) {
	l.t.Helper()
	counts := l.jobs.count()
	for _, id := range ids {
		if counts[id] != 1 {
			l.t.Errorf("run %s got %d Jobs; expected exactly 1", id, counts[id])
		}
	}

}

// assertPlannedJobs fails on a Job for a run no commit planned.
func (l *lab) assertPlannedJobs(ids []string) {
	l.t.Helper()
	for id, c := range l.jobs.count() {
		if !slices.Contains(ids, id) {
			l.t.Errorf("%d Job(s) for run %q that no commit planned", c, id)
		}
	}
}

// settle waits a little for any Job a wrong controller would still create.
func (l *lab) settle() { time.Sleep(5 * time.Second) }

// runningPod waits until the run's pod has its run container running.
func (l *lab) runningPod(runID string, timeout time.Duration) corev1.Pod {
	l.t.Helper()
	var found corev1.Pod
	label, err := render.RunIDLabelValue(runID)
	if err != nil {
		l.t.Fatal(err)
	}
	waitFor(l.t, timeout, "a running pod of run "+runID, func() (bool, error) {
		pods, err := l.n.client.CoreV1().Pods(l.ns).List(context.Background(), metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Labels[render.LabelRunID] != label {
				continue
			}
			for _, s := range p.Status.ContainerStatuses {
				if s.State.Running != nil {
					found = p
					return true, nil
				}
			}
		}
		return false, nil
	}, func() { l.n.describe(l.t, l.ns) })
	return found
}

// killController kills the controller's pod at once (no grace: SIGKILL, as
// a node losing it would) and waits for its replacement to be ready.
func (l *lab) killController() {
	l.t.Helper()
	ctx := context.Background()
	sel := metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=expsync"}
	pods, err := l.n.client.CoreV1().Pods(l.ns).List(ctx, sel)
	if err != nil {
		l.t.Fatal(err)
	}
	if len(pods.Items) != 1 {
		l.t.Fatalf("%d controller pods; expected 1", len(pods.Items))
	}
	old := pods.Items[0].Name
	l.t.Logf("3. killing the controller pod %s", old)
	if err := l.n.client.CoreV1().Pods(l.ns).Delete(ctx, old, metav1.DeleteOptions{GracePeriodSeconds: ptr.To[int64](0)}); err != nil {
		l.t.Fatal(err)
	}
	waitFor(l.t, 3*time.Minute, "a new controller pod ready", func() (bool, error) {
		pods, err := l.n.client.CoreV1().Pods(l.ns).List(ctx, sel)
		if err != nil {
			return false, err
		}
		for _, p := range pods.Items {
			if p.Name == old || p.DeletionTimestamp != nil {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					return true, nil
				}
			}
		}
		return false, nil
	}, func() { l.n.describe(l.t, l.ns) })
}
