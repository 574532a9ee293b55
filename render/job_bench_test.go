package render_test

import (
	"runtime"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
)

var benchJobOptions = render.JobOptions{
	Namespace:   "lab",
	RunnerImage: "ghcr.io/expsync/expsync@sha256:1111111111111111111111111111111111111111111111111111111111111111",
	Repository:  "https://git.example/lab/experiments.git",
	Commit:      "0123456789abcdef0123456789abcdef01234567",
}

// BenchmarkRenderJobs10k renders the Jobs (contracts included) of the
// 10,000 runs of sweepRepo, planned once beforehand. Reported:
// alloc-MiB/op, live-MiB (what holding all 10,000 Jobs costs), and
// x-deepcopy: rendering time over the bare cost of producing the same
// objects by DeepCopy of already rendered ones — what names, labels,
// policies and contract encoding add on top of allocating the objects.
func BenchmarkRenderJobs10k(b *testing.B) {
	plan, err := render.Plan(sweepRepo(), render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: "s3://bucket/lab"})
	if err != nil {
		b.Fatal(err)
	}
	if len(plan.Runs) != 10_000 {
		b.Fatalf("%d runs, want 10000", len(plan.Runs))
	}
	objs, err := render.RenderJobs(plan.Runs, benchJobOptions)
	if err != nil {
		b.Fatal(err)
	}
	bareStart := time.Now()
	copies := make([]render.JobObjects, len(objs))
	for i, o := range objs {
		copies[i] = render.JobObjects{Job: o.Job.DeepCopy(), ContractJSON: string([]byte(o.ContractJSON))}
	}
	bare := time.Since(bareStart)
	copies = nil
	objs = nil

	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		objs, err = render.RenderJobs(plan.Runs, benchJobOptions)
		if err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	perOp := time.Duration(int64(b.Elapsed()) / int64(b.N))
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
	b.ReportMetric(float64(perOp)/float64(bare), "x-deepcopy")
	runtime.GC()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.HeapAlloc-min(after.HeapAlloc, before.HeapAlloc))/(1<<20), "live-MiB")
	runtime.KeepAlive(objs)
	runtime.KeepAlive(copies)
}

// BenchmarkPlanAndRender10k is the figure end to end: plan the
// 10,000-point sweep from its repository and render every Job.
func BenchmarkPlanAndRender10k(b *testing.B) {
	repo := sweepRepo()
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		plan, err := render.Plan(repo, render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: "s3://bucket/lab"})
		if err != nil {
			b.Fatal(err)
		}
		objs, err := render.RenderJobs(plan.Runs, benchJobOptions)
		if err != nil {
			b.Fatal(err)
		}
		if len(objs) != 10_000 {
			b.Fatalf("%d Jobs", len(objs))
		}
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	b.ReportMetric(float64(after.TotalAlloc-before.TotalAlloc)/float64(b.N)/(1<<20), "alloc-MiB/op")
}

// planAndStream plans sweepRepo and renders every run through
// RenderJobsFunc, as `expsync render` and the controller do, sampling the
// live heap every 500 Jobs. It returns the Jobs rendered and the peak live
// heap above the starting point, in MiB.
func planAndStream(tb testing.TB) (jobs int, peakMiB float64) {
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	peak := uint64(0)
	sample := func() {
		runtime.ReadMemStats(&ms)
		if ms.HeapAlloc > base && ms.HeapAlloc-base > peak {
			peak = ms.HeapAlloc - base
		}
	}
	plan, err := render.Plan(sweepRepo(), render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: "s3://bucket/lab"})
	if err != nil {
		tb.Fatal(err)
	}
	sample()
	err = render.RenderJobsFunc(plan.Runs, benchJobOptions, func(objs render.JobObjects) error {
		if objs.Job == nil || objs.ContractJSON == "" {
			tb.Fatal("nil object")
		}
		jobs++
		if jobs%500 == 0 {
			sample()
		}
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	sample()
	runtime.KeepAlive(plan)
	return jobs, float64(peak) / (1 << 20)
}

// BenchmarkPlanAndStream10k: plan the sweep and render its 10,000 Jobs one
// at a time (what `expsync render` does). peak-live-MiB is the largest live
// heap sampled during the run (every 500 Jobs), i.e. what the process needs.
func BenchmarkPlanAndStream10k(b *testing.B) {
	var peak float64
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		jobs, p := planAndStream(b)
		if jobs != 10_000 {
			b.Fatalf("%d Jobs", jobs)
		}
		peak = max(peak, p)
	}
	b.ReportMetric(peak, "peak-live-MiB")
}

// TestRender10kNamesAreUniqueAndValid: the 10,000 Jobs of one sweep have
// 10,000 distinct names and run-id labels, all valid for the API server.
func TestRender10kNamesAreUniqueAndValid(t *testing.T) {
	if testing.Short() {
		t.Skip("-short")
	}
	plan, err := render.Plan(sweepRepo(), render.PlanOptions{Mode: v1alpha1.ModeKubernetes})
	if err != nil {
		t.Fatal(err)
	}
	names, labels := map[string]bool{}, map[string]bool{}
	err = render.RenderJobsFunc(plan.Runs, benchJobOptions, func(o render.JobObjects) error {
		name, label := o.Job.Name, o.Job.Labels[render.LabelRunID]
		if names[name] || labels[label] {
			t.Fatalf("Job name %s or run-id label %s seen twice", name, label)
		}
		names[name], labels[label] = true, true
		if msgs := validation.IsDNS1123Label(name); len(msgs) > 0 {
			t.Fatalf("Job name %q: %v", name, msgs)
		}
		if msgs := validation.IsValidLabelValue(label); len(msgs) > 0 {
			t.Fatalf("run-id label %q: %v", label, msgs)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 10_000 {
		t.Errorf("%d distinct names, want 10000", len(names))
	}
}
