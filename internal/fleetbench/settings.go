package fleetbench

import (
	"os"
	"sort"
	"strconv"
	"strings"
	"testing"
)

// Counts reads the fleet sizes to measure from EXPSYNC_BENCH_FLEET
// (100,1000,10000), smallest first. Unset, the benchmark is skipped: it
// takes minutes per count (make bench-fleet sets it).
func Counts(b testing.TB) []int {
	b.Helper()
	spec := os.Getenv("EXPSYNC_BENCH_FLEET")
	if spec == "" {
		b.Skip("set EXPSYNC_BENCH_FLEET=100,1000,10000 (make bench-fleet): minutes per count")
	}
	var counts []int
	for _, f := range strings.Split(spec, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			b.Fatalf("EXPSYNC_BENCH_FLEET=%q: want counts such as 100,1000,10000", spec)
		}
		counts = append(counts, n)
	}
	sort.Ints(counts)
	return counts
}

// Cycles is how many polling intervals are measured per count
// (EXPSYNC_BENCH_FLEET_CYCLES, default 2).
func Cycles() int {
	if v, err := strconv.Atoi(os.Getenv("EXPSYNC_BENCH_FLEET_CYCLES")); err == nil && v > 0 {
		return v
	}
	return 2
}
