package local

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartedAtExcludesTheWaitForAdmission runs four 0.4 s runs one at a
// time: each run's StartedAt must be when its own process started (as the
// process itself saw the clock), not when it was submitted, so its
// duration is that of its process.
func TestStartedAtExcludesTheWaitForAdmission(t *testing.T) {
	h := newHarness(t, func(o *Options) { o.MaxConcurrent = 1 })
	stamps := t.TempDir()
	var jobs []*Job
	for i := range 4 {
		c := shellContract(`date +%s%N > "$STAMP"; sleep 0.4`, "STAMP", filepath.Join(stamps, strconv.Itoa(i)))
		j, err := h.ex.Submit(c, nil)
		if err != nil {
			t.Fatal(err)
		}
		jobs = append(jobs, j)
	}
	for i, j := range jobs {
		res := wait(t, j)
		if res.Status != "Succeeded" {
			t.Fatalf("run %d: %s %s", i, res.Status, res.Error)
		}
		b, err := os.ReadFile(filepath.Join(stamps, strconv.Itoa(i)))
		if err != nil {
			t.Fatal(err)
		}
		ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		processStart := time.Unix(0, ns)
		if skew := processStart.Sub(res.StartedAt); skew < 0 || skew > 150*time.Millisecond {
			t.Errorf("run %d: StartedAt %s, its process started at %s (%s later); want StartedAt at the process start",
				i, res.StartedAt.Format("15:04:05.000"), processStart.Format("15:04:05.000"), skew)
		}
		if d := res.FinishedAt.Sub(res.StartedAt); d > 1200*time.Millisecond {
			t.Errorf("run %d: duration %s for a 0.4 s command", i, d)
		}
		if !res.QueuedAt.Before(res.StartedAt) {
			t.Errorf("run %d: queued at %s, started at %s", i, res.QueuedAt, res.StartedAt)
		}
	}
}
