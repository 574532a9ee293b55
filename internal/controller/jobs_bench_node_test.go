package controller

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/kubetest"
	"github.com/expsync/expsync/internal/standin"
)

func formatCounts(m map[string]int, runs int) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s %d (%.2f/run); ", k, m[k], float64(m[k])/float64(runs))
	}
	return strings.TrimSuffix(b.String(), "; ")
}

// countedController starts `expsync controller` (executor/kube, qps 50,
// burst 300) with its requests counted.
func countedController(t testing.TB, f *fixture, storeRoot string) (*controllerProcess, *kubetest.RequestCounter) {
	cfg := apiServer(t)
	counter := &kubetest.RequestCounter{}
	cfg.Wrap(counter.Wrap)
	return startKubeController(t, cfg, f.state, storeRoot), counter
}

// sweepOf is the sweep of x = 1..n.
func sweepOf(n int) string {
	xs := make([]string, n)
	for i := range xs {
		xs[i] = strconv.Itoa(i + 1)
	}
	return strings.Join(xs, ", ")
}

// BenchmarkJobsOnANode is BenchmarkThousandRunsJobCreation on what a
// cluster has and bare envtest lacks: the real kube-controller-manager
// (the Job controller makes each Job's pod) and, for a run's whole life,
// the stand-in kubelet playing the pods. It prints, side by side:
//
//   - creation: one commit of 1,000 runs (EXPSYNC_BENCH_RUNS), time from
//     the object's creation until every Job exists, next to client-go
//     creating as many Jobs in a bare loop at the same QPS and burst, in
//     the same run on the same API server; the controller's API requests
//     by verb and resource (its pods stay Pending: no kubelet plays this
//     namespace, as on a cluster without room);
//
//   - whole life: one commit of 100 runs (EXPSYNC_BENCH_LIFE_RUNS) from
//     push to results committed and Jobs deleted, requests per run by
//     verb and resource;
//
//   - then the same repository unchanged for 3 intervals of 10 s: ref
//     listings and API writes.
//
//     KUBEBUILDER_ASSETS=$HOME/.cache/expsync/envtest/bin go test -run '^$' -bench JobsOnANode -benchtime 1x ./internal/controller
func BenchmarkJobsOnANode(b *testing.B) {
	runs, lifeRuns := 1000, 100
	if v, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_RUNS")); err == nil && v > 0 {
		runs = v
	}
	if v, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_LIFE_RUNS")); err == nil && v > 0 {
		lifeRuns = v
	}
	for i := 0; i < b.N; i++ {
		suffix := fmt.Sprintf("%d-%d", i, time.Now().UnixNano()%100000)

		// Creation: 1,000 Jobs, pods made by the Job controller, none played.
		f := newFixture(b, "node-create-"+suffix)
		n := newNode(b, f.key.Namespace, false, standin.Hooks{})
		f.lab.Commit("a thousand runs", squareSweep(sweepOf(runs)))
		p, counter := countedController(b, f, n.storeRoot)
		start := time.Now()
		f.create(time.Hour)
		f.update(func(o *v1alpha1.ExperimentRepository) { o.Spec.Execution.MaxInFlight = int32(runs) })
		for {
			jobs, _ := n.counts() // the test's Job informer: no list per poll
			if len(jobs) >= runs {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("%d Jobs after 10 minutes", len(jobs))
			}
			time.Sleep(200 * time.Millisecond)
		}
		took := time.Since(start)
		// Until the Job controller made every pod: what the controller's
		// informers see in flight on a cluster.
		for countObjects(f.c, f.key.Namespace, "PodList") < runs && time.Since(start) < 10*time.Minute {
			time.Sleep(time.Second)
		}
		time.Sleep(6 * time.Second) // past executor/kube's 5 s look at Jobs without pods
		creation := counter.Snapshot()
		p.stop()

		peerTook := clientGoLoop(b, f.key.Namespace+"-peer", runs)

		// Whole life: pushed, run, collected, committed, Jobs deleted.
		lf := newFixture(b, "node-life-"+suffix)
		ln := newNode(b, lf.key.Namespace, true, standin.Hooks{})
		lf.lab.Commit("runs", squareSweep(sweepOf(lifeRuns)))
		lp, lcounter := countedController(b, lf, ln.storeRoot)
		lifeStart := time.Now()
		lf.create(10 * time.Second)
		lf.update(func(o *v1alpha1.ExperimentRepository) { o.Spec.Execution.MaxInFlight = int32(lifeRuns) })
		waitFor(b, lf.c, lf.key, "every result committed", 15*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
			return len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == int32(lifeRuns) &&
				o.Status.Refs[0].ObservedCommit == revision("refs/heads/main", lf.lab.Head())
		})
		for countObjects(lf.c, lf.key.Namespace, "JobList") != 0 && time.Since(lifeStart) < 15*time.Minute {
			time.Sleep(200 * time.Millisecond)
		}
		lifeTook := time.Since(lifeStart)
		time.Sleep(3 * time.Second) // the last deletions' and status writes' echoes
		life := lcounter.Snapshot()

		// Unchanged: 3 intervals.
		lp.reconciler.mu.Lock()
		st := lp.reconciler.repos[lf.key]
		lp.reconciler.mu.Unlock()
		lists := st.src.Stats().Lists
		const periods = 3
		time.Sleep(periods*10*time.Second + 5*time.Second)
		idle := kubetest.Diff(life, lcounter.Snapshot())
		idleLists := st.src.Stats().Lists - lists
		lp.stop()

		b.ReportMetric(took.Seconds(), "s-to-all-Jobs")
		b.ReportMetric(peerTook.Seconds(), "s-client-go-loop")
		b.ReportMetric(float64(kubetest.Writes(life))/float64(lifeRuns), "writes/run")
		b.ReportMetric(float64(kubetest.Sum(life))/float64(lifeRuns), "requests/run")
		fmt.Printf("\n| qps 50 burst 300, real Job controller | expsync controller | client-go loop, same limits | ratio |\n|---|---:|---:|---:|\n")
		fmt.Printf("| %d runs: time until every Job exists | %.1f s | %.1f s | %.2f |\n", runs, took.Seconds(), peerTook.Seconds(), took.Seconds()/peerTook.Seconds())
		fmt.Printf("| %d runs: API requests until every Job exists and its pod is Pending | %d (%.2f/run) | %d POST jobs (1/run) | %.2f |\n",
			runs, kubetest.Sum(creation), float64(kubetest.Sum(creation))/float64(runs), runs, float64(kubetest.Sum(creation))/float64(runs))
		fmt.Printf("| %d runs: API writes per run over the whole life (%s) | %.2f | 2 (create + delete) | %.2f |\n",
			lifeRuns, lifeTook.Round(time.Second), float64(kubetest.Writes(life))/float64(lifeRuns), float64(kubetest.Writes(life))/float64(lifeRuns)/2)
		fmt.Printf("| %d runs: API requests per run over the whole life | %.2f | | |\n", lifeRuns, float64(kubetest.Sum(life))/float64(lifeRuns))
		fmt.Printf("| unchanged repository, %d intervals | %d ref listings, %d API writes, %d API requests | %d listings, 0 writes | |\n",
			periods, idleLists, kubetest.Writes(idle), kubetest.Sum(idle), periods)
		fmt.Printf("\ncreation requests by kind: %s\n", formatCounts(creation, runs))
		fmt.Printf("whole-life requests by kind: %s\n", formatCounts(life, lifeRuns))
		fmt.Printf("unchanged-repository requests by kind: %s\n", formatCounts(idle, 1))
	}
}

// countObjects counts a namespace's objects of a kind (PodList, JobList)
// by their metadata only, -1 when the API server cannot answer now (a
// loaded machine: the caller polls again).
func countObjects(c client.Client, ns, listKind string) int {
	list := &metav1.PartialObjectMetadataList{}
	group := ""
	if listKind == "JobList" {
		group = "batch"
	}
	list.SetGroupVersionKind(schema.GroupVersionKind{Group: group, Version: "v1", Kind: listKind})
	if err := c.List(context.Background(), list, client.InNamespace(ns)); err != nil {
		return -1
	}
	return len(list.Items)
}

// clientGoLoop creates n Jobs in a bare loop at qps 50 / burst 300 and
// returns how long it took: the floor those limits set.
func clientGoLoop(b *testing.B, ns string, n int) time.Duration {
	cfg := apiServer(b)
	cfg.QPS, cfg.Burst = 50, 300
	peer, err := client.New(cfg, client.Options{Scheme: NewScheme()})
	if err != nil {
		b.Fatal(err)
	}
	if err := peer.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	for j := 0; j < n; j++ {
		job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("peer-%d", j)},
			Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
				Containers: []corev1.Container{{Name: "c", Image: busybox, Command: []string{"true"}}}}}}}
		if err := peer.Create(context.Background(), job); err != nil {
			b.Fatal(err)
		}
	}
	return time.Since(start)
}
