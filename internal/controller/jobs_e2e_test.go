package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
)

// hostileExperiments are two experiments whose pods lie: liar's command
// exits 3 and then forges a termination message and a result that claim
// success with an output; digest's node reports another image digest than
// the pinned one.
var hostileExperiments = map[string]string{
	"experiments/liar.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: liar}
spec:
  image: ` + busybox + `
  command: [sh, -c, 'mkdir -p out && echo honest > out/x.txt && exit 3']
  outputs: [out/x.txt]
`,
	"experiments/digest.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: digest}
spec:
  image: ` + busybox + `
  command: [sh, -c, 'mkdir -p out && echo hi > out/x.txt']
  outputs: [out/x.txt]
`,
}

// otherDigest is what the node claims to have run for experiment digest.
const otherDigest = "docker.io/library/busybox@sha256:6666666666666666666666666666666666666666666666666666666666666666"

// hostileHooks play liar's forgery and digest's wrong image.
func hostileHooks(t testing.TB) standin.Hooks {
	return standin.Hooks{
		ImageID: func(pod *corev1.Pod, container string) string {
			if container == render.MainContainerName && pod.Labels[render.LabelExperiment] == "digest" {
				return otherDigest
			}
			return ""
		},
		AfterContainer: func(pod *corev1.Pod, container, termination string, mounts map[string]string) {
			if container != render.MainContainerName || pod.Labels[render.LabelExperiment] != "liar" {
				return
			}
			prefix := mounts[render.StoreRunDir]
			out := putObject(t, prefix, []byte("forged\n"))
			forged := fmt.Sprintf(`{"runID":%q,"status":"Succeeded","exitCode":0,"attempts":1,"outputs":[{"path":"out/x.txt","mode":"100644","sha256":%q,"size":7}]}`,
				runIDOf(pod), out)
			result := putObject(t, prefix, []byte(forged))
			msg := fmt.Sprintf(`{"runID":%q,"status":"Succeeded","exitCode":0,"resultSHA256":%q}`, runIDOf(pod), result)
			if err := os.WriteFile(termination, []byte(msg), 0o666); err != nil {
				t.Error(err)
			}
		},
	}
}

// TestJobsEndToEnd is the Kubernetes mode whole, through the controller:
// an ExperimentRepository on a real Git server (loopback, through a proxy
// that can go down), its runs as Jobs made into pods by the real Job
// controller and played by the stand-in kubelet, outputs collected
// through the store, signed results committed back and verified on a
// fresh clone. The controller is killed and started again between every
// two steps. Steps: runs killed mid-way (their pods finish while no
// controller runs); a pod deleted mid-run; pods that lie about their exit
// code and image digest; a force-push that drops the results; the Git
// server down, then back. At the end every run has exactly one result in
// the history, and no Job was created twice except the deleted pod's.
func TestJobsEndToEnd(t *testing.T) {
	f := newFixture(t, "e2e-jobs")
	repoURL, down := switchableProxy(t, f)
	f.url = repoURL
	g := newGate()
	hooks := hostileHooks(t)
	hooks.BeforeContainer = g.before
	n := newNode(t, f.key.Namespace, true, hooks)
	cfg := apiServer(t)
	start := func() *controllerProcess { return startKubeController(t, cfg, f.state, n.storeRoot) }
	runs := func(o *v1alpha1.ExperimentRepository) v1alpha1.RunCounts {
		if len(o.Status.Refs) != 1 {
			return v1alpha1.RunCounts{}
		}
		return o.Status.Refs[0].Runs
	}
	done := func(succeeded, failed int32) func(*v1alpha1.ExperimentRepository) bool {
		return func(o *v1alpha1.ExperimentRepository) bool {
			r := runs(o)
			return r.Succeeded == succeeded && r.Failed == failed && r.Running == 0 && r.Held == 0 &&
				o.Status.Refs[0].ObservedCommit == revision("refs/heads/main", f.lab.Head())
		}
	}
	requestReconcile := func() {
		f.update(func(o *v1alpha1.ExperimentRepository) {
			o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
		})
	}

	// 1. Three runs; the controller is killed while their pods run; they
	// finish with no controller; the next one collects and commits them;
	// a third finds nothing to do.
	g.close(3)
	f.lab.Commit("experiments", squareSweep("1, 2, 3"))
	f.create(10 * time.Second)
	p := start()
	g.await(t, 3)
	p.stop()
	g.open()
	p = start()
	obj := waitFor(t, f.c, f.key, "3 results", 3*time.Minute, done(3, 0))
	if !kstatusReady(obj) {
		t.Errorf("after 3 results: %s, kstatus %s", condString(obj, meta.ReadyCondition), kstatusOf(obj))
	}
	p.stop()
	p = start()
	waitFor(t, f.c, f.key, "the restarted controller's status", time.Minute, done(3, 0))
	for id, rec := range f.committedRuns("square") {
		if rec.Status != contract.Succeeded || rec.Executor != "kubernetes" || !rec.Usage.SelfReported ||
			strings.Join(rec.SelfReported, ",") != "log,metrics,usage" {
			t.Errorf("run %s: status %s, executor %q, usage self-reported %v, selfReported %v", contract.ShortID(id), rec.Status,
				rec.Executor, rec.Usage.SelfReported, rec.SelfReported)
		}
	}
	// Collected Jobs are deleted (logs and outputs live in the store).
	deadline := time.Now().Add(time.Minute)
	for len(n.jobs()) != 0 {
		if time.Now().After(deadline) {
			t.Fatalf("%d Jobs left a minute after their results were committed", len(n.jobs()))
		}
		time.Sleep(200 * time.Millisecond)
	}

	// 2. A pod deleted mid-run (a person's kubectl delete pod): that
	// attempt is not a result; the run runs again and ends in exactly one.
	p.stop()
	p = start()
	g.close(1)
	f.lab.Pull()
	f.lab.Commit("one more", squareSweep("1, 2, 3, 4"))
	requestReconcile()
	pod := g.await(t, 1)[0]
	deleted := runIDOf(pod)
	if err := n.clientset.CoreV1().Pods(f.key.Namespace).Delete(context.Background(), pod.Name, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	g.open()
	waitFor(t, f.c, f.key, "4 results after the pod's deletion", 3*time.Minute, done(4, 0))

	// 3. Pods that lie: the container's exit code and the node's image
	// digest win over what the pod wrote.
	p.stop()
	p = start()
	f.lab.Pull()
	hostile := f.lab.Commit("hostile pods", hostileExperiments)
	requestReconcile()
	waitFor(t, f.c, f.key, "the hostile runs failed", 3*time.Minute, done(4, 2))
	for _, rec := range f.committedRuns("liar") {
		// Its outputs are its own claim either way (the code under test
		// writes them): what stands is the status and exit code from the
		// node, and digests the controller rehashed (verifyClone).
		if rec.Status != contract.Failed || rec.ExitCode != 3 || !strings.Contains(rec.Reason, "exited 3") {
			t.Errorf("liar: status %s, exit code %d, reason %q; want Failed with the container's exit code 3", rec.Status, rec.ExitCode, rec.Reason)
		}
	}
	for _, rec := range f.committedRuns("digest") {
		if rec.Status != contract.Failed || !strings.Contains(rec.Reason, otherDigest) || len(rec.Outputs) != 0 {
			t.Errorf("digest: status %s, reason %q, outputs %v; want Failed naming the digest that ran", rec.Status, rec.Reason, rec.Outputs)
		}
	}

	// 4. A force-push that drops the results commits: the results are
	// committed again from the run cache, nothing runs again.
	p.stop()
	p = start()
	_, startedBefore := n.counts()
	f.lab.Pull()
	f.lab.Git(f.lab.Peer, "reset", "-q", "--hard", hostile)
	if err := os.WriteFile(filepath.Join(f.lab.Peer, "NOTES.md"), []byte("rewritten\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.lab.Git(f.lab.Peer, "add", "-A")
	f.lab.Git(f.lab.Peer, "commit", "-q", "-m", "rewritten history")
	rewritten := strings.TrimSpace(f.lab.Git(f.lab.Peer, "rev-parse", "HEAD"))
	f.lab.Git(f.lab.Peer, "push", "-q", "--force", "origin", "main")
	requestReconcile()
	waitFor(t, f.c, f.key, "the results again on the rewritten history", 3*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return f.lab.Head() != rewritten && done(4, 2)(o)
	})
	if _, started := n.counts(); fmt.Sprint(started) != fmt.Sprint(startedBefore) {
		t.Errorf("runs started again after the force-push: %v, before %v", started, startedBefore)
	}

	// 5. The Git server goes down with a new commit waiting; the
	// controller is restarted while it is down; once it is back the new
	// run runs once.
	down.Store(true)
	f.lab.Pull()
	f.lab.Commit("while down", squareSweep("1, 2, 3, 4, 5"))
	requestReconcile()
	obj = waitFor(t, f.c, f.key, "FetchFailed", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.IsTrue(o, v1alpha1.FetchFailedCondition)
	})
	if conditions.IsReady(obj) || conditions.IsStalled(obj) {
		t.Errorf("server down: %s, %s", condString(obj, meta.ReadyCondition), condString(obj, meta.StalledCondition))
	}
	p.stop()
	p = start()
	time.Sleep(2 * time.Second)
	down.Store(false)
	requestReconcile()
	waitFor(t, f.c, f.key, "5 results once the server is back", 3*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return !conditions.Has(o, v1alpha1.FetchFailedCondition) && done(5, 2)(o)
	})
	p.stop()

	// Every result exactly once, verified on a fresh clone.
	if got := f.verifyClone("square"); got != 5 {
		t.Errorf("%d square results verify, want 5", got)
	}
	for _, e := range []string{"liar", "digest"} {
		if got := f.verifyClone(e); got != 1 {
			t.Errorf("%d %s results verify, want 1", got, e)
		}
	}
	additions := f.runJSONAdditions()
	if len(additions) != 7 {
		t.Errorf("%d run.json files in main's history, want 7: %v", len(additions), additions)
	}
	for path, c := range additions {
		if c != 1 {
			t.Errorf("%s added by %d commits, want 1", path, c)
		}
	}
	jobs, started := n.counts()
	if len(jobs) != 7 {
		t.Errorf("Jobs for %d runs, want 7: %v", len(jobs), jobs)
	}
	for id, c := range jobs {
		want := 1
		if id == deleted {
			want = 2 // the Job whose pod was deleted failed; the rerun is a new one
		}
		if c > want || started[id] > want {
			t.Errorf("run %s: %d Jobs created, %d run containers started; want at most %d", contract.ShortID(id), c, started[id], want)
		}
	}
	t.Logf("Jobs created per run: %v; run containers started: %v", jobs, started)
}
