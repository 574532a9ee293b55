package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
)

// The trivial run of the latency figures: it writes one small output.
const trivialCommand = "mkdir -p out && echo ok > out/ok"

// Neither side requests resources (BestEffort): 100 pods fit the node at
// once, and no CPU limit throttles either. (With the limit equal to a small
// request, as render sets it, a 10m CPU limit throttles the runner's Go
// startup in both containers: the rendered run took 28 s at p50 beside the
// bare Job's 9 s.)

func trivialRepo(t testing.TB, n *node, points int) string {
	t.Helper()
	return trivialRepoFrom(t, n, 1, points)
}

func trivialRepoSeeds(t testing.TB, n *node, seeds []string) string {
	t.Helper()
	dir := t.TempDir()
	yaml := fmt.Sprintf(`apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: trivial}
spec:
  image: %s
  command: [sh, -c, %q, "{{params.seed}}"]
  sweep: {matrix: {seed: [%s]}}
  outputs: [out/ok]
  timeout: 1m
`, n.busyboxImage, trivialCommand, strings.Join(seeds, ", "))
	if err := os.MkdirAll(filepath.Join(dir, "experiments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "experiments", "trivial.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// barePod is the peer: the same command in the same image, as a pod with
// nothing of expsync (no init container, no runner, no store), hardened as
// the restricted namespace demands.
func barePod(n *node, name string) *corev1.Pod {
	return &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PodSpec{
			RestartPolicy:                corev1.RestartPolicyNever,
			AutomountServiceAccountToken: ptr.To(false),
			EnableServiceLinks:           ptr.To(false),
			SecurityContext: &corev1.PodSecurityContext{
				RunAsNonRoot: ptr.To(true), RunAsUser: ptr.To(render.DefaultRunAsUser), RunAsGroup: ptr.To(render.DefaultRunAsUser),
				SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
			},
			Volumes: []corev1.Volume{{Name: "work", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
			Containers: []corev1.Container{{
				Name: "run", Image: n.busyboxImage, Command: []string{"sh", "-c", trivialCommand},
				WorkingDir:   "/work",
				VolumeMounts: []corev1.VolumeMount{{Name: "work", MountPath: "/work"}},
				SecurityContext: &corev1.SecurityContext{
					AllowPrivilegeEscalation: ptr.To(false), Capabilities: &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
					ReadOnlyRootFilesystem: ptr.To(true),
				},
			}},
		},
	}
}

// waitJobWatch waits for a Job's terminal condition with a watch (no
// polling interval in the figure) and returns when it was seen.
func (n *node) waitJobWatch(ctx context.Context, ns, name string) (batchv1.JobConditionType, error) {
	w, err := n.client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + name})
	if err != nil {
		return "", err
	}
	defer w.Stop()
	for ev := range w.ResultChan() {
		if ev.Type == watch.Error {
			return "", fmt.Errorf("watch: %v", ev.Object)
		}
		if job, ok := ev.Object.(*batchv1.Job); ok {
			if typ, _ := jobFinished(job); typ != "" {
				return typ, nil
			}
		}
	}
	return "", ctx.Err()
}

// BenchmarkTrivialJobLatency: from creating a Job to seeing it Complete, for
// a rendered run of a trivial experiment (init container verifying the
// context, the runner, outputs hashed into the store) side by side with a
// bare Job running the same command in the same image; interleaved, one of
// each per iteration, so the machine's noise hits both alike.
//
//	make e2e-bench   (or: EXPSYNC_E2E=1 go test -run '^$' -bench TrivialJobLatency -benchtime 10x ./test/e2e)
func BenchmarkTrivialJobLatency(b *testing.B) {
	n := realNode(b)
	ns := n.namespace(b, "latency")
	vs := n.hostStore(b, ns)
	repo := trivialRepo(b, n, b.N)
	objs := n.renderJobs(b, repo, ns)
	exportRuns(b, vs, repo, objs)
	ctx := context.Background()
	var rendered, bare []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		o := objs[i]
		started := time.Now()
		if _, err := n.create(ctx, vs, o); err != nil {
			b.Fatal(err)
		}
		if typ, err := n.waitJobWatch(ctx, ns, o.Job.Name); err != nil || typ != batchv1.JobComplete {
			n.describe(b, ns)
			b.Fatalf("rendered Job %s: %s %v", o.Job.Name, typ, err)
		}
		rendered = append(rendered, time.Since(started))

		pod := barePod(n, "")
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bare-%d", i), Namespace: ns},
			Spec:       batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: pod.Spec}},
		}
		started = time.Now()
		if _, err := n.client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if typ, err := n.waitJobWatch(ctx, ns, job.Name); err != nil || typ != batchv1.JobComplete {
			n.describe(b, ns)
			b.Fatalf("bare Job %s: %s %v", job.Name, typ, err)
		}
		bare = append(bare, time.Since(started))
	}
	b.StopTimer()
	table(b, "Job create → Complete", []string{"rendered run (expsync)", "bare Job (peer)"}, [][]time.Duration{rendered, bare})
}

// BenchmarkHundredPods: 100 bare pods created with one `kubectl create`
// until all have Succeeded — the baseline the controller's 100-run figure
// (commit → all results committed) is compared with — side by side with the
// 100 rendered Jobs of a 100-point sweep created the same way (one kubectl call), until all are Complete. Each side
// runs alone on the node: the other's pods are gone before it starts.
//
//	make e2e-bench   (or: EXPSYNC_E2E=1 go test -run '^$' -bench HundredPods -benchtime 1x ./test/e2e)
func BenchmarkHundredPods(b *testing.B) {
	n := realNode(b)
	kubectl := os.Getenv("EXPSYNC_KUBECTL")
	if kubectl == "" {
		b.Fatal("EXPSYNC_KUBECTL is not set (hack/cluster/up's env file names it)")
	}
	const count = 100
	var bare, rendered []time.Duration
	for i := 0; i < b.N; i++ {
		// Bare pods.
		ns := n.namespace(b, "bare100")
		var list corev1.List
		list.APIVersion, list.Kind = "v1", "List"
		for p := 0; p < count; p++ {
			pod := barePod(n, fmt.Sprintf("bare-%03d", p))
			raw, _ := json.Marshal(pod)
			list.Items = append(list.Items, runtimeRaw(raw))
		}
		bare = append(bare, n.kubectlCreateAndWait(b, kubectl, ns, list, count, podsSucceeded))
		n.deleteNamespaceAndWait(b, ns)

		// Rendered Jobs of a 100-point sweep.
		ns = n.namespace(b, "jobs100")
		vs := n.hostStore(b, ns)
		repo := trivialRepo(b, n, count)
		objs := n.renderJobs(b, repo, ns)
		exportRuns(b, vs, repo, objs)
		list = corev1.List{}
		list.APIVersion, list.Kind = "v1", "List"
		for _, o := range objs {
			if err := vs.PreparePrefix(context.Background(), o.Job.Annotations[render.AnnotationRunID]); err != nil {
				b.Fatal(err)
			}
			raw, _ := json.Marshal(o.Job)
			list.Items = append(list.Items, runtimeRaw(raw))
		}
		rendered = append(rendered, n.kubectlCreateAndWait(b, kubectl, ns, list, count, jobsComplete))
		n.deleteNamespaceAndWait(b, ns)
	}
	table(b, fmt.Sprintf("%d pods: kubectl create → all finished", count), []string{"rendered Jobs (expsync)", "bare pods (peer)"}, [][]time.Duration{rendered, bare})
}

func runtimeRaw(raw []byte) runtime.RawExtension { return runtime.RawExtension{Raw: raw} }

// kubectlCreateAndWait creates a list with one kubectl call and returns the
// time until done reports count objects finished.
func (n *node) kubectlCreateAndWait(b *testing.B, kubectl, ns string, list corev1.List, count int, done func(*node, string) (int, error)) time.Duration {
	b.Helper()
	data, err := json.Marshal(list)
	if err != nil {
		b.Fatal(err)
	}
	file := filepath.Join(b.TempDir(), "objects.json")
	if err := os.WriteFile(file, data, 0o644); err != nil {
		b.Fatal(err)
	}
	started := time.Now()
	if out, err := exec.Command(kubectl, "-n", ns, "create", "-f", file).CombinedOutput(); err != nil {
		b.Fatalf("kubectl create: %v\n%s", err, out)
	}
	waitFor(b, 10*time.Minute, fmt.Sprintf("%d objects of %s to finish", count, ns), func() (bool, error) {
		finished, err := done(n, ns)
		return finished >= count, err
	}, func() { n.describe(b, ns) })
	return time.Since(started)
}

func podsSucceeded(n *node, ns string) (int, error) {
	pods, err := n.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	done := 0
	for _, p := range pods.Items {
		switch p.Status.Phase {
		case corev1.PodSucceeded:
			done++
		case corev1.PodFailed:
			return 0, fmt.Errorf("pod %s failed: %s", p.Name, p.Status.Message)
		}
	}
	return done, nil
}

func jobsComplete(n *node, ns string) (int, error) {
	jobs, err := n.client.BatchV1().Jobs(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return 0, err
	}
	done := 0
	for i := range jobs.Items {
		switch typ, cond := jobFinished(&jobs.Items[i]); typ {
		case batchv1.JobComplete:
			done++
		case batchv1.JobFailed:
			return 0, fmt.Errorf("Job %s failed: %s", jobs.Items[i].Name, cond.Message)
		}
	}
	return done, nil
}

func (n *node) deleteNamespaceAndWait(b *testing.B, ns string) {
	b.Helper()
	ctx := context.Background()
	_ = n.client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	waitFor(b, 5*time.Minute, "namespace "+ns+" to be deleted", func() (bool, error) {
		_, err := n.client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return err != nil, ignoreNotFound(err)
	})
}

// table prints the sides' median and 90th percentile side by side with the
// ratio of the first to the second, and reports the medians as metrics.
func table(b *testing.B, what string, names []string, sides [][]time.Duration) {
	b.Helper()
	var lines []string
	lines = append(lines, fmt.Sprintf("%s (%d each, interleaved)", what, len(sides[0])))
	lines = append(lines, fmt.Sprintf("  %-26s %10s %10s %10s", "", "p50", "p90", "max"))
	var p50s []time.Duration
	for i, s := range sides {
		sorted := append([]time.Duration(nil), s...)
		sort.Slice(sorted, func(a, c int) bool { return sorted[a] < sorted[c] })
		p50, p90, mx := quantile(sorted, 0.5), quantile(sorted, 0.9), sorted[len(sorted)-1]
		p50s = append(p50s, p50)
		lines = append(lines, fmt.Sprintf("  %-26s %10s %10s %10s", names[i], p50.Round(time.Millisecond), p90.Round(time.Millisecond), mx.Round(time.Millisecond)))
		b.ReportMetric(p50.Seconds(), strings.Fields(names[i])[0]+"-p50-s")
	}
	// The peer is the last side; every other side's ratio is to it.
	peer := len(sides) - 1
	for i := 0; i < peer; i++ {
		ratio := float64(p50s[i]) / float64(p50s[peer])
		lines = append(lines, fmt.Sprintf("  ratio %s / %s (p50): %.2f", strings.Fields(names[i])[0], strings.Fields(names[peer])[0], ratio))
		metric := "ratio-p50"
		if peer > 1 {
			metric = strings.Fields(names[i])[0] + "-ratio-p50"
		}
		b.ReportMetric(ratio, metric)
	}
	fmt.Println(strings.Join(lines, "\n"))
}

func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(q*float64(len(sorted)-1) + 0.5)
	return sorted[i]
}

// BenchmarkPushToResults: the loop users wait for, on the real node with
// the controller installed from the chart — from `git push` of a commit with
// one new trivial run (and an immediate trigger: reconcile.fluxcd.io/
// requestedAt, as `flux reconcile` or a webhook receiver sets it) until its
// signed result is committed back on the branch — side by side with a bare
// Job running the same command, created and watched until Complete;
// interleaved, one of each per iteration.
//
//	make e2e-bench   (or: EXPSYNC_E2E=1 go test -run '^$' -bench PushToResults -benchtime 10x ./test/e2e)
func BenchmarkPushToResults(b *testing.B) {
	n := realNode(b)
	l := n.newLab(b, "push")
	tl := n.watchTimeline(b, l.ns)
	ctx := context.Background()
	// A first push makes the controller clone the repository; the figure is
	// for a repository it already watches.
	first := trivialRepo(b, n, 1)
	l.push("warm up", first)
	l.waitResults(n.plannedRuns(b, first), 5*time.Minute)
	const (
		msPush      = "push"
		msRequested = "pushed"
		msResult    = "result on the branch"
		msCreate    = "create called"
	)
	loopStages := newBreakdown(
		stage{"git push (the git CLI, to git http-backend)", msPush, msRequested},
		stage{"requestedAt → Job created (poll, fetch, plan, render, create)", msRequested, msJobCreated},
		stage{"Job created → pod created (Job controller)", msJobCreated, msPodCreated},
		stage{"pod created → scheduled (scheduler)", msPodCreated, msPodScheduled},
		stage{"scheduled → init container running (kubelet, sandbox)", msPodScheduled, msInitRunning},
		stage{"init running → done (verify context, copy runner)", msInitRunning, msInitDone},
		stage{"init done → run container running", msInitDone, msRunRunning},
		stage{"run running → done (expsync exec: command, outputs)", msRunRunning, msRunDone},
		stage{"run done → Job finished (kubelet status, Job controller)", msRunDone, msJobFinished},
		stage{"Job finished → Job deleted (collect, run cache)", msJobFinished, msJobDeleted},
		stage{"Job deleted → results pushed (sign, commit, push)", msJobDeleted, msResult},
	)
	bareStages := newBreakdown(
		stage{"create → Job created (seen by the watch)", msCreate, msJobCreated},
		stage{"Job created → pod created (Job controller)", msJobCreated, msPodCreated},
		stage{"pod created → scheduled (scheduler)", msPodCreated, msPodScheduled},
		stage{"scheduled → container running (kubelet, sandbox)", msPodScheduled, msRunRunning},
		stage{"running → done (the command)", msRunRunning, msRunDone},
		stage{"done → Job finished (kubelet status, Job controller)", msRunDone, msJobFinished},
	)
	var loop, bare []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		repo := trivialSeedRepo(b, n, 1000+i)
		ids := n.plannedRuns(b, repo)
		l.remote.commitTree(fmt.Sprintf("seed %d", 1000+i), repo)
		started := time.Now()
		l.remote.pushHead()
		pushed := time.Now()
		l.requestReconcile()
		l.waitResults(ids, 5*time.Minute)
		// The results were on the branch when the server answered the
		// controller's push, not when this test's polling saw them.
		onBranch := l.remote.receivedAfter(pushed)
		if onBranch.IsZero() {
			b.Fatalf("the results of run %s are on the branch, but the server answered no push of the controller after the commit", ids[0])
		}
		loop = append(loop, onBranch.Sub(started))
		marks := tl.job(ids[0])
		marks[msPush], marks[msRequested], marks[msResult] = started, pushed, onBranch
		loopStages.add(marks)
		if i == b.N-1 {
			// The last iteration's Git requests: where the fetch and the
			// results push spend their time.
			fmt.Printf("the controller's Git requests of the last iteration (from the push; start, duration):\n  %s\n",
				strings.Join(l.remote.requestsBetween(started, onBranch), "\n  "))
		}

		pod := barePod(n, "")
		job := &batchv1.Job{
			ObjectMeta: metav1.ObjectMeta{Name: fmt.Sprintf("bare-%d", i), Namespace: l.ns},
			Spec:       batchv1.JobSpec{BackoffLimit: ptr.To[int32](0), Template: corev1.PodTemplateSpec{Spec: pod.Spec}},
		}
		started = time.Now()
		if _, err := n.client.BatchV1().Jobs(l.ns).Create(ctx, job, metav1.CreateOptions{}); err != nil {
			b.Fatal(err)
		}
		if typ, err := n.waitJobWatch(ctx, l.ns, job.Name); err != nil || typ != batchv1.JobComplete {
			n.describe(b, l.ns)
			b.Fatalf("bare Job %s: %s %v", job.Name, typ, err)
		}
		bare = append(bare, time.Since(started))
		marks = tl.job(job.Name)
		marks[msCreate] = started
		bareStages.add(marks)
	}
	b.StopTimer()
	table(b, "push → result committed (controller) beside Job create → Complete", []string{"push-to-results (expsync)", "bare Job (peer)"}, [][]time.Duration{loop, bare})
	fmt.Println(loopStages.print("where push → result goes (milestones as a watch sees them; p50 of each stage)"))
	fmt.Println(bareStages.print("where the bare Job's time goes"))
	l.saveControllerLog(os.Getenv("EXPSYNC_E2E_CONTROLLER_LOG"))
}

// BenchmarkHundredRunCommit: a commit with a 100-point sweep of the trivial
// experiment pushed to the repository the controller (installed from the
// chart) watches, until all 100 results are committed back — side by side
// with the same 100 pods created bare with one `kubectl create`, until all
// have Succeeded. Each side runs alone on the node.
//
//	make e2e-bench   (or: EXPSYNC_E2E=1 go test -run '^$' -bench HundredRunCommit -benchtime 1x ./test/e2e)
func BenchmarkHundredRunCommit(b *testing.B) {
	n := realNode(b)
	kubectl := os.Getenv("EXPSYNC_KUBECTL")
	if kubectl == "" {
		b.Fatal("EXPSYNC_KUBECTL is not set (hack/cluster/up's env file names it)")
	}
	const count, inFlight = 100, 10
	// A 2-core node cannot start 100 rendered runs at once (each starts
	// the runner's Go binary twice: 100 at once put the machine at load
	// ~260 and 46 Jobs passed their 11.5-minute deadline still in Init), so
	// the repository bounds its Jobs in flight, as a deployment sized for
	// its nodes does (execution.maxInFlight). The peer's busybox pods all
	// start at once.
	l := n.newLab(b, "commit100", func(er *v1alpha1.ExperimentRepository) { er.Spec.Execution.MaxInFlight = inFlight })
	warm := trivialSeedRepo(b, n, 0)
	l.push("warm up", warm)
	known := n.plannedRuns(b, warm)
	l.waitResults(known, 5*time.Minute)
	var bare, loop []time.Duration
	for i := 0; i < b.N; i++ {
		ns := n.namespace(b, "bare100")
		var list corev1.List
		list.APIVersion, list.Kind = "v1", "List"
		for p := 0; p < count; p++ {
			pod := barePod(n, fmt.Sprintf("bare-%03d", p))
			raw, _ := json.Marshal(pod)
			list.Items = append(list.Items, runtimeRaw(raw))
		}
		bare = append(bare, n.kubectlCreateAndWait(b, kubectl, ns, list, count, podsSucceeded))
		fmt.Printf("%d bare pods: kubectl create → all Succeeded in %s\n", count, bare[len(bare)-1].Round(time.Millisecond))
		n.deleteNamespaceAndWait(b, ns)

		repo := trivialRepoFrom(b, n, 1+i*count, count)
		ids := n.plannedRuns(b, repo)
		if len(ids) != count {
			b.Fatalf("%d runs planned; expected %d", len(ids), count)
		}
		started := time.Now()
		l.push(fmt.Sprintf("%d runs", count), repo)
		l.waitResults(append(known, ids...), 15*time.Minute)
		loop = append(loop, time.Since(started))
		known = append(known, ids...)
	}
	table(b, fmt.Sprintf("%d runs: push / kubectl create → all finished (expsync: maxInFlight %d)", count, inFlight), []string{"commit-to-100-results (expsync)", "bare pods (peer)"}, [][]time.Duration{loop, bare})
}

// trivialSeedRepo is the trivial experiment with one run, its seed seed.
func trivialSeedRepo(t testing.TB, n *node, seed int) string { return trivialRepoFrom(t, n, seed, 1) }

// trivialRepoFrom is the trivial experiment with points runs, seeds first,
// first+1, ...
func trivialRepoFrom(t testing.TB, n *node, first, points int) string {
	t.Helper()
	seeds := make([]string, points)
	for i := range seeds {
		seeds[i] = fmt.Sprint(first + i)
	}
	return trivialRepoSeeds(t, n, seeds)
}
