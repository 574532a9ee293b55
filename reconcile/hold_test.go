package reconcile

import (
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/render"
)

func TestRetryPolicyWaits(t *testing.T) {
	p := RetryPolicy{Base: 30 * time.Second}
	var got []time.Duration
	for n := 1; n <= 9; n++ {
		got = append(got, p.wait(n))
	}
	want := []time.Duration{30 * time.Second, time.Minute, 2 * time.Minute, 4 * time.Minute, 8 * time.Minute,
		10 * time.Minute, 10 * time.Minute, 10 * time.Minute, 10 * time.Minute}
	if d := cmp.Diff(want, got); d != "" {
		t.Errorf("waits (-want +got):\n%s", d)
	}
}

// A held run is skipped until its wait ends; the same run with another
// resource request (a commit that makes it fit: the run ID is unchanged)
// is tried at once, and a run that finishes forgets its holds.
func TestHoldBackSkipsOnlyTheHeldRequest(t *testing.T) {
	r := &Reconciler{Retry: RetryPolicy{Base: time.Hour, Max: time.Hour}}
	run := render.Run{ID: "0123456789abcdef", Experiment: "big"}
	run.Contract.Limits.CPU = "64"
	fixed := run
	fixed.Contract.Limits.CPU = "1"

	if h := r.hold(run, "requests 64 CPUs"); !h.Changed || h.Failures != 1 {
		t.Errorf("first hold %+v, want changed, 1 failure", h)
	}
	if h := r.hold(run, "requests 64 CPUs"); h.Changed || h.Failures != 2 || h.Wait != time.Hour {
		t.Errorf("second hold %+v, want unchanged, 2 failures, wait 1h (capped)", h)
	}
	rep := &Report{}
	got := r.holdBack([]render.Run{run, fixed}, rep)
	if len(got) != 1 || got[0].Contract.Limits.CPU != "1" || rep.Held != 1 || rep.NextRetry.IsZero() {
		t.Errorf("holdBack kept %v, report %+v; want only the fixed request, one held", got, rep)
	}
	if h, ok := r.release(fixed); !ok || h.Failures != 2 {
		t.Errorf("release: %+v %v", h, ok)
	}
	if held := r.Held(); len(held) != 0 {
		t.Errorf("held after release: %+v", held)
	}
}
