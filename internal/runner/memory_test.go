package runner

import (
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
)

// ballast raises this test process's peak RSS above what the commands
// below use, as expsync's own RSS is in production: a runner that takes
// wait4's ru_maxrss as is reports at least this much for every run.
var ballast []byte

func raiseOwnPeakRSS(t *testing.T, bytes int) {
	t.Helper()
	if ballast == nil {
		ballast = make([]byte, bytes)
		for i := 0; i < len(ballast); i += 4096 {
			ballast[i] = 1
		}
	}
	runtime.KeepAlive(ballast)
	if own := platform.SelfPeakRSS(); own < int64(bytes) {
		t.Fatalf("own VmHWM %d after touching %d bytes", own, bytes)
	}
}

func TestPeakMemoryIsTheRunsOwn(t *testing.T) {
	if _, err := exec.LookPath("python3"); err != nil {
		t.Skip("python3 is needed to allocate a known amount of memory")
	}
	raiseOwnPeakRSS(t, 128<<20)
	const MiB = 1 << 20
	// Allocating touches every page: b"x" * n.
	alloc := func(mib int) string {
		return "import time; b = b'x' * (" + itoa(mib) + " << 20); time.sleep(0.5)"
	}
	for _, tc := range []struct {
		name        string
		command     []string
		least, most int64
		method      string
	}{
		{"true exits at once", []string{"true"}, 0, 20 * MiB, contract.MaxRSSSampled + "|" + contract.MaxRSSUnmeasured},
		{"a shell doing nothing", []string{"sh", "-c", ":"}, 0, 20 * MiB, contract.MaxRSSSampled + "|" + contract.MaxRSSUnmeasured},
		// A short run (~20 ms) is still seen past its first pages (a
		// retest once saw 20 KiB for a shell, sampled right after exec).
		{"python exiting at once", []string{"python3", "-c", "pass"}, 2 * MiB, 20 * MiB, contract.MaxRSSSampled},
		// Below this process's own peak: only the sampler can tell.
		{"python allocating 64 MiB", []string{"python3", "-c", alloc(64)}, 64 * MiB, 110 * MiB, contract.MaxRSSSampled},
		{"python under a shell allocating 64 MiB", []string{"sh", "-c", "python3 -c \"" + alloc(64) + "\"; true"}, 64 * MiB, 110 * MiB, contract.MaxRSSSampled},
		// Above it: the kernel's exact figure.
		{"python allocating 200 MiB", []string{"python3", "-c", alloc(200)}, 200 * MiB, 260 * MiB, contract.MaxRSSByRusage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.method
			if want == contract.MaxRSSByRusage && platform.SelfPeakRSS() >= tc.least {
				// This process already peaked higher (the race detector's
				// shadow memory): only the sampler can tell.
				want = contract.MaxRSSSampled
			}
			f := newFixture(t)
			res := f.run(newContract(tc.command...).build())
			if res.Status != contract.Succeeded {
				t.Fatalf("status %s: %s", res.Status, res.Error)
			}
			got := res.Usage.MaxRSSBytes
			if got < tc.least || got > tc.most {
				t.Errorf("peak RSS %.1f MiB, want %.0f to %.0f MiB (this process's own peak: %.0f MiB)",
					float64(got)/MiB, float64(tc.least)/MiB, float64(tc.most)/MiB, float64(platform.SelfPeakRSS())/MiB)
			}
			if !slices.Contains(strings.Split(want, "|"), res.Usage.MaxRSSMethod) {
				t.Errorf("method %q, want %q", res.Usage.MaxRSSMethod, want)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
