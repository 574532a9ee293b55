package render_test

import (
	"fmt"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// sweepRepo is a repository with one experiment of a 100 × 100 sweep.
func sweepRepo() *tree.Memory {
	values := make([]string, 100)
	for i := range values {
		values[i] = fmt.Sprint(i)
	}
	list := "[" + strings.Join(values, ", ") + "]"
	return tree.MemoryOf(map[string]string{
		"experiments/big/sweep.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: big}
spec:
  image: ` + digest + `
  command: [python, train.py, "--lr={{params.lr}}", "--seed={{params.seed}}", "--epochs={{params.epochs}}"]
  env: [{name: OMP_NUM_THREADS, value: "1"}, {name: TOKEN, secretRef: {name: s, key: k}}]
  params: {epochs: 10}
  sweep:
    matrix: {lr: ` + list + `, seed: ` + list + `}
  inputs: [{name: data, file: data/x.csv}]
  outputs: [out/model.bin, out/plots/]
  metrics: out/metrics.json
  resources: {cpu: "1", memory: 1Gi}
`,
		"experiments/big/train.py": "print('train')\n",
		"data/x.csv":               "a,b\n",
	})
}

// BenchmarkPlan10kSweep plans 10,000 runs. Reported: MiB allocated per plan
// (alloc-MiB/op), MiB still live holding the result (live-MiB), and the ratio
// of the plan's time to the bare cost of computing 10,000 run IDs with the
// same canonical-JSON + sha256 recipe (x-bare-ids): what expansion,
// templating and contracts add on top of the hashing.
func BenchmarkPlan10kSweep(b *testing.B) {
	repo := sweepRepo()
	res, err := render.Plan(repo, render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		b.Fatal(err)
	}
	if len(res.Runs) != 10_000 {
		b.Fatalf("%d runs, want 10000", len(res.Runs))
	}
	identities := make([]contract.Identity, len(res.Runs))
	for i, r := range res.Runs {
		identities[i] = r.Contract.Identity
	}
	bareStart := time.Now()
	for _, id := range identities {
		if _, err := id.ID(); err != nil {
			b.Fatal(err)
		}
	}
	bare := time.Since(bareStart)

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		res, err = render.Plan(repo, render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	perOp := time.Duration(int64(b.Elapsed()) / int64(b.N))
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
	b.ReportMetric(float64(perOp)/float64(bare), "x-bare-ids")
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc)/(1<<20), "live-MiB")
	runtime.KeepAlive(res)
}

// TestPlan10kSweepBudget holds the bound (< 1 s, < 100 MiB) in a form
// that a loaded CI machine cannot break: the allocation is exact, and time is
// the CPU the process spent planning (~0.16 s on an idle machine; wall time
// there measures the neighbours: 3.98 s at load ~190). Planning that takes a
// second of CPU is a real regression; BenchmarkPlan10kSweep gives the figure.
func TestPlan10kSweepBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 10,000-run plan is a budget check, not a unit test")
	}
	repo := sweepRepo()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	cpuBefore := processCPU(t)
	start := time.Now()
	res, err := render.Plan(repo, render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	elapsed := time.Since(start)
	cpu := processCPU(t) - cpuBefore
	runtime.ReadMemStats(&after)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Runs) != 10_000 {
		t.Fatalf("%d runs", len(res.Runs))
	}
	alloc := float64(after.TotalAlloc-before.TotalAlloc) / (1 << 20)
	t.Logf("planned 10,000 runs in %s wall, %s CPU, %.1f MiB allocated", elapsed, cpu, alloc)
	if cpu > time.Second || alloc > 100 {
		t.Errorf("planning 10,000 runs took %s of CPU and %.1f MiB; budget 1 s and 100 MiB", cpu, alloc)
	}
}

// processCPU is the user and system CPU this test process has used so far.
func processCPU(t *testing.T) time.Duration {
	t.Helper()
	var u syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &u); err != nil {
		t.Fatalf("getrusage: %v", err)
	}
	return time.Duration(u.Utime.Nano() + u.Stime.Nano())
}
