package controller

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
)

// BenchmarkThousandRunsJobCreation pushes one commit of 1,000 runs and
// measures, with the controller at --kube-api-qps 50 --kube-api-burst 300,
// the time from the object's creation until every Job exists, next to the
// floor those limits set (client-go creating 1,000 Jobs in a bare loop at
// the same QPS and burst, measured in the same run), and the API requests
// the controller made per run (counted at its transport, by verb).
//
//	KUBEBUILDER_ASSETS=$HOME/.cache/expsync/envtest/bin go test -run '^$' -bench ThousandRuns -benchtime 1x ./internal/controller
func BenchmarkThousandRunsJobCreation(b *testing.B) {
	const runs = 1000
	xs := make([]string, runs)
	for i := range xs {
		xs[i] = fmt.Sprint(i + 1)
	}
	for i := 0; i < b.N; i++ {
		f := newFixture(b, fmt.Sprintf("bench-%d-%d", i, time.Now().UnixNano()%100000))
		f.lab.Commit("a thousand runs", squareSweep(strings.Join(xs, ", ")))
		cfg := apiServer(b)
		counter := &requestCounter{byVerb: map[string]int{}}
		cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter })
		storeRoot := b.TempDir()
		if err := os.MkdirAll(filepath.Join(storeRoot, f.key.Namespace, "store"), 0o755); err != nil {
			b.Fatal(err)
		}
		p := startKubeController(b, cfg, f.state, storeRoot)
		obj := &v1alpha1.ExperimentRepository{}
		start := time.Now()
		f.create(time.Hour)
		if err := f.c.Get(context.Background(), f.key, obj); err != nil {
			b.Fatal(err)
		}
		f.update(func(o *v1alpha1.ExperimentRepository) { o.Spec.Execution.MaxInFlight = runs })
		for {
			var list batchv1.JobList
			if err := f.c.List(context.Background(), &list, client.InNamespace(f.key.Namespace)); err != nil {
				b.Fatal(err)
			}
			if len(list.Items) >= runs {
				break
			}
			if time.Since(start) > 10*time.Minute {
				b.Fatalf("%d Jobs after 10 minutes", len(list.Items))
			}
			time.Sleep(200 * time.Millisecond)
		}
		took := time.Since(start)
		counts := counter.snapshot()
		p.stop()

		// The floor: the same number of Job creations at the same limits.
		peerCfg := apiServer(b)
		peerCfg.QPS, peerCfg.Burst = 50, 300
		peer, err := client.New(peerCfg, client.Options{Scheme: NewScheme()})
		if err != nil {
			b.Fatal(err)
		}
		ns := f.key.Namespace + "-peer"
		if err := peer.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}); err != nil {
			b.Fatal(err)
		}
		peerStart := time.Now()
		for j := 0; j < runs; j++ {
			job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: fmt.Sprintf("peer-%d", j)},
				Spec: batchv1.JobSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{RestartPolicy: corev1.RestartPolicyNever,
					Containers: []corev1.Container{{Name: "c", Image: busybox, Command: []string{"true"}}}}}}}
			if err := peer.Create(context.Background(), job); err != nil {
				b.Fatal(err)
			}
		}
		peerTook := time.Since(peerStart)
		writes := counts[http.MethodPost] + counts[http.MethodPatch] + counts[http.MethodPut] + counts[http.MethodDelete]
		b.ReportMetric(took.Seconds(), "s-to-all-Jobs")
		b.ReportMetric(peerTook.Seconds(), "s-client-go-floor")
		b.ReportMetric(float64(counts[http.MethodPost]+counts[http.MethodGet]+counts[http.MethodPatch]+counts[http.MethodPut]+counts[http.MethodDelete])/runs, "requests/run")
		fmt.Printf("\n| %d runs, qps 50 burst 300 | expsync controller | client-go loop (floor) | ratio |\n|---|---:|---:|---:|\n", runs)
		fmt.Printf("| time until every Job exists | %.1f s | %.1f s | %.2f |\n", took.Seconds(), peerTook.Seconds(), took.Seconds()/peerTook.Seconds())
		fmt.Printf("| API requests (controller, by verb) | %v | %d POST | |\n", counts, runs)
		fmt.Printf("| API writes per run so far (Job created, not yet finished) | %.2f | 1 | |\n", float64(writes)/runs)
	}
}
