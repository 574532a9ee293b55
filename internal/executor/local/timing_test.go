package local

import (
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStartedAtExcludesTheWaitForAdmission runs four 0.4 s runs one at a
// time: each run's StartedAt must be when its own process started (as the
// process itself saw the clock), not when it was submitted, so its
// duration is that of its process. The checks are orderings, not time
// bounds, so a loaded machine cannot fail them: with one slot, a run is
// admitted only once the process before it has exited, at least 0.4 s after
// that process stamped its start (a StartedAt that counted the wait for
// admission would be earlier), and each process starts after its own
// StartedAt. (FinishedAt is no bound: the slot is freed when the process
// exits, before its outputs are hashed.)
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
	type span struct {
		startedAt, processStart time.Time
	}
	var spans []span
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
		if processStart.Before(res.StartedAt) {
			t.Errorf("run %d: StartedAt %s is after its process started at %s",
				i, res.StartedAt.Format("15:04:05.000"), processStart.Format("15:04:05.000"))
		}
		if !res.QueuedAt.Before(res.StartedAt) {
			t.Errorf("run %d: queued at %s, started at %s", i, res.QueuedAt, res.StartedAt)
		}
		spans = append(spans, span{res.StartedAt, processStart})
	}
	// The executor need not admit runs in submission order: compare runs in
	// the order their processes started.
	sort.Slice(spans, func(a, b int) bool { return spans[a].processStart.Before(spans[b].processStart) })
	for k := 1; k < len(spans); k++ {
		if earliest := spans[k-1].processStart.Add(400 * time.Millisecond); spans[k].startedAt.Before(earliest) {
			t.Errorf("a run's StartedAt is %s, before the run ahead of it could have ended (%s): the wait for admission was counted",
				spans[k].startedAt.Format("15:04:05.000"), earliest.Format("15:04:05.000"))
		}
	}
}
