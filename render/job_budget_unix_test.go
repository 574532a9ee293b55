//go:build unix

package render_test

import (
	"syscall"
	"testing"
	"time"
)

// cpuTime is the process's user+system CPU time: unlike wall time, it does
// not grow when other processes share the machine (CI runs packages in
// parallel on few cores).
func cpuTime(t *testing.T) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestPlanAndRender10kBudget holds the bound for planning and
// rendering 10,000 Jobs: under 1 s and under 100 MiB. Checked as CPU time
// (GC included) with room for slow CI machines, 2 s, and as the live heap
// while streaming, 100 MiB; wall time is logged.
func TestPlanAndRender10kBudget(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: the 10,000-Job render is a budget check, not a unit test")
	}
	start, startCPU := time.Now(), cpuTime(t)
	jobs, peak := planAndStream(t)
	elapsed, cpu := time.Since(start), cpuTime(t)-startCPU
	t.Logf("planned and rendered %d Jobs: %s CPU, %s wall, peak live heap %.1f MiB", jobs, cpu, elapsed, peak)
	if jobs != 10_000 || cpu > 2*time.Second || peak > 100 {
		t.Errorf("%d Jobs with %s CPU and a %.1f MiB peak; budget 10,000 in 1 s (2 s on CI) under 100 MiB", jobs, cpu, peak)
	}
}
