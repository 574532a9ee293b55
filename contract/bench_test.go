package contract

import (
	"testing"
	"time"
)

// BenchmarkCanonicalFastVsJCS measures what the hand-written canonical form
// (appendCanonical) saves per run ID over the general path (encoding/json,
// then jcs.Transform), interleaved so machine noise hits both alike.
// saved-µs/run is noise beside a run of seconds, but a commit plans every
// run of its sweeps at once: render's 10,000-run plan budget (1 s, 100 MiB,
// TestPlan10kSweepBudget) is met only with the fast path.
func BenchmarkCanonicalFastVsJCS(b *testing.B) {
	id := goldenIdentity()
	const chunk = 64
	var tFast, tJCS time.Duration
	b.ReportAllocs()
	b.ResetTimer()
	for done := 0; done < b.N; done += chunk {
		n := min(chunk, b.N-done)
		start := time.Now()
		for i := 0; i < n; i++ {
			if _, ok := appendCanonical(nil, id); !ok {
				b.Fatal("fast path refused")
			}
		}
		mid := time.Now()
		for i := 0; i < n; i++ {
			if _, err := id.canonicalJCS(); err != nil {
				b.Fatal(err)
			}
		}
		tFast += mid.Sub(start)
		tJCS += time.Since(mid)
	}
	b.StopTimer()
	b.ReportMetric(float64(tFast.Nanoseconds())/float64(b.N), "fast-ns/op")
	b.ReportMetric(float64(tJCS.Nanoseconds())/float64(b.N), "jcs-ns/op")
	b.ReportMetric(float64((tJCS-tFast).Nanoseconds())/float64(b.N)/1e3, "saved-µs/run")
	b.ReportMetric(float64(tJCS)/float64(tFast), "x-jcs/fast")
}
