package envtest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/executor/kube"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
)

// benchJobs is how many runs the creation benchmark sends
// (EXPSYNC_BENCH_JOBS, default 1000: the one commit of 1,000 runs).
func benchJobs() int {
	if n, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_JOBS")); err == nil && n > 0 {
		return n
	}
	return 1000
}

// sweepRepository is one experiment of n runs in a Kueue queue: their Jobs
// are created suspended, so the benchmark measures creating them and
// nothing the Job controller does afterwards.
func sweepRepository(n int) map[string]string {
	seeds := make([]string, n)
	for i := range seeds {
		seeds[i] = strconv.Itoa(i)
	}
	return map[string]string{
		"experiments/sweep.yaml": "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: sweep}\nspec:\n  image: " + busybox +
			"\n  command: [sh, -c, 'echo {{params.seed}}']\n  queue: bench\n  sweep: {matrix: {seed: [" + strings.Join(seeds, ", ") + "]}}\n",
	}
}

// withContractConfigMap is the design the executor does not use, for
// comparison: each run's contract in a ConfigMap created before its Job.
type withContractConfigMap struct{ client.Client }

func (c withContractConfigMap) Create(ctx context.Context, obj client.Object, opts ...client.CreateOption) error {
	if job, ok := obj.(*batchv1.Job); ok {
		cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: job.Name, Namespace: job.Namespace},
			Data: map[string]string{render.ContractFileName: job.Spec.Template.Annotations[render.AnnotationContract]}}
		if err := c.Client.Create(ctx, cm); err != nil {
			return err
		}
	}
	return c.Client.Create(ctx, obj, opts...)
}

type creationFigures struct {
	name             string
	qps              float32
	burst            int
	jobs             int
	elapsed, floor   time.Duration
	writesPerRun     float64
	cpu              time.Duration
	heapMiB          float64
	createLatencyP50 time.Duration
}

// BenchmarkJobCreation: one commit of N runs (default 1,000) handed to the
// executor at once; the time until every Job exists, against the floor the
// client's rate limit sets ((N - burst) / QPS), at Flux's defaults
// (--kube-api-qps 50, --kube-api-burst 300) next to client-go's (5, 10),
// and with a ConfigMap per run (the design not taken). Also the executor
// process's CPU and memory. Run with -benchtime 1x:
//
//	KUBEBUILDER_ASSETS=~/.cache/expsync/envtest/bin go test ./test/envtest -run '^$' -bench JobCreation -benchtime 1x
func BenchmarkJobCreation(b *testing.B) {
	n := benchJobs()
	var figures []creationFigures
	for _, v := range []struct {
		name       string
		qps        float32
		burst      int
		configMaps bool
	}{
		{"flux-defaults", 50, 300, false},
		{"flux-defaults-configmap", 50, 300, true},
		{"client-go-defaults", 5, 10, false},
	} {
		b.Run(v.name, func(b *testing.B) {
			for i := 0; i < b.N; i++ {
				f := benchCreation(b, fmt.Sprintf("bench-create-%d-%s", i, v.name), n, v.qps, v.burst, v.configMaps)
				f.name = v.name
				figures = append(figures, f)
				b.ReportMetric(f.elapsed.Seconds(), "s-all-jobs")
				b.ReportMetric(f.floor.Seconds(), "s-floor")
				b.ReportMetric(f.elapsed.Seconds()/max(f.floor.Seconds(), 0.001), "x-floor")
				b.ReportMetric(f.writesPerRun, "writes/run")
			}
		})
	}
	if len(figures) == 0 {
		return
	}
	fmt.Printf("\n%d runs of one commit, until every Job exists (Jobs suspended in a Kueue queue: no pods)\n", n)
	fmt.Printf("%-24s %5s %6s %10s %10s %9s %11s %12s %9s %9s\n", "client", "QPS", "burst", "all Jobs", "floor", "x floor", "writes/run", "create p50*", "CPU", "heap MiB")
	var base time.Duration
	for _, f := range figures {
		if f.name == "flux-defaults" {
			base = f.elapsed
		}
	}
	for _, f := range figures {
		fmt.Printf("%-24s %5.0f %6d %10s %10s %9.2f %11.2f %12s %9s %9.1f\n", f.name, f.qps, f.burst, f.elapsed.Round(10*time.Millisecond),
			f.floor.Round(10*time.Millisecond), f.elapsed.Seconds()/max(f.floor.Seconds(), 0.001), f.writesPerRun,
			f.createLatencyP50.Round(time.Millisecond), f.cpu.Round(10*time.Millisecond), f.heapMiB)
	}
	for _, f := range figures {
		if base > 0 && f.name != "flux-defaults" {
			fmt.Printf("%s takes %.2fx as long as flux-defaults\n", f.name, f.elapsed.Seconds()/base.Seconds())
		}
	}
	fmt.Println("floor: (runs - burst) / QPS, the client's rate limit on Jobs (controller-runtime gives each API group its own bucket);")
	fmt.Println("* the create request's latency including the wait for the client's rate limiter; CPU and heap: the executor's process")
}

func benchCreation(b *testing.B, ns string, n int, qps float32, burst int, configMaps bool) creationFigures {
	h := newJobsHarness(b, ns, standin.Hooks{})
	runs := h.plan(sweepRepository(n))
	if len(runs) != n {
		b.Fatalf("%d runs", len(runs))
	}
	var created atomic.Int64
	var latMu sync.Mutex
	var latencies []time.Duration
	allCreated := make(chan struct{})
	h.qps, h.burst = qps, burst
	if configMaps {
		h.wrapClient = func(c client.Client) client.Client { return withContractConfigMap{c} }
	}
	p := h.startController(nil, func(o *kube.Options) {
		o.Observe = func(ob kube.Observation) {
			if ob.Kind != kube.JobCreated {
				return
			}
			latMu.Lock()
			latencies = append(latencies, ob.Latency)
			latMu.Unlock()
			if created.Add(1) == int64(n) {
				close(allCreated)
			}
		}
	})
	var before syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &before)
	writesBefore := p.requests.Writes()
	ctx, stop := context.WithCancelCause(h.ctx)
	defer stop(errors.New("benchmark over"))
	b.ResetTimer()
	start := time.Now()
	var wg sync.WaitGroup
	for _, run := range runs {
		wg.Add(1)
		go func(run render.Run) {
			defer wg.Done()
			_, _ = p.executor.Execute(ctx, run)
		}(run)
	}
	select {
	case <-allCreated:
	case <-time.After(15 * time.Minute):
		b.Fatalf("only %d of %d Jobs created in 15 minutes", created.Load(), n)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var after syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &after)
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	writes := p.requests.Writes() - writesBefore
	// Shutting down leaves the Jobs; the namespace's deletion removes them.
	stop(errors.New("benchmark over"))
	wg.Wait()
	_ = h.clientset.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	latMu.Lock()
	defer latMu.Unlock()
	sortDurations(latencies)
	// controller-runtime's client limits each API group-version with a
	// token bucket of its own: ConfigMaps (v1) do not slow Jobs (batch/v1)
	// down on the client, so the floor is the Jobs' alone in every variant;
	// the ConfigMaps' cost is the API server's (twice the writes).
	floor := time.Duration(float64(max(0, n-burst)) / float64(qps) * float64(time.Second))
	return creationFigures{qps: qps, burst: burst, jobs: n, elapsed: elapsed, floor: floor,
		writesPerRun: float64(writes) / float64(n), cpu: cpuTime(after) - cpuTime(before),
		heapMiB: float64(ms.HeapInuse) / (1 << 20), createLatencyP50: latencies[len(latencies)/2]}
}

func cpuTime(r syscall.Rusage) time.Duration {
	return time.Duration(r.Utime.Nano() + r.Stime.Nano())
}

func sortDurations(d []time.Duration) {
	for i := 1; i < len(d); i++ {
		for j := i; j > 0 && d[j] < d[j-1]; j-- {
			d[j], d[j-1] = d[j-1], d[j]
		}
	}
}

// BenchmarkRequestsPerRun runs a commit's runs through their whole life
// (created, played by the stand-in kubelet, collected, deleted) and counts
// every API request of the executor's process by verb and resource:
// writes per run are the figure the design promises (2), reads are the
// informers' lists and watches, shared by all runs.
//
//	KUBEBUILDER_ASSETS=~/.cache/expsync/envtest/bin go test ./test/envtest -run '^$' -bench RequestsPerRun -benchtime 1x
func BenchmarkRequestsPerRun(b *testing.B) {
	n := 50
	if v, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_LIFE_RUNS")); err == nil && v > 0 {
		n = v
	}
	for i := 0; i < b.N; i++ {
		h := newJobsHarness(b, fmt.Sprintf("bench-life-%d", i), standin.Hooks{})
		files := sweepRepository(n)
		files["experiments/sweep.yaml"] = strings.Replace(files["experiments/sweep.yaml"], "  queue: bench\n", "", 1)
		runs := h.plan(files)
		// Counted from the process's start: its informers' watches are part
		// of what the runs cost, shared by all of them.
		p := h.startController(nil)
		b.ResetTimer()
		var wg sync.WaitGroup
		var failed atomic.Int64
		for _, run := range runs {
			wg.Add(1)
			go func(run render.Run) {
				defer wg.Done()
				res, err := p.executor.Execute(h.ctx, run)
				if err != nil || res.Status != contract.Succeeded {
					if failed.Add(1) <= 3 {
						b.Logf("run %s: %+v, %v", run.ID[:12], res, err)
					}
				}
			}(run)
		}
		wg.Wait()
		b.StopTimer()
		if failed.Load() > 0 {
			b.Fatalf("%d runs failed", failed.Load())
		}
		after := p.requests.Snapshot()
		fmt.Printf("\nAPI requests of the executor's process, from its start, for %d runs over their whole life (create, play, collect, delete):\n", n)
		fmt.Printf("%-28s %8s %10s\n", "request", "count", "per run")
		writes := 0
		for _, k := range sortedKeys(after) {
			d := after[k]
			fmt.Printf("%-28s %8d %10.2f\n", k, d, float64(d)/float64(n))
			switch strings.SplitN(k, " ", 2)[0] {
			case "POST", "PUT", "PATCH", "DELETE":
				writes += d
			}
		}
		fmt.Printf("%-28s %8d %10.2f\n", "writes", writes, float64(writes)/float64(n))
		b.ReportMetric(float64(writes)/float64(n), "writes/run")
	}
}

func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	return keys
}
