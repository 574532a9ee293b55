package runner

import (
	"context"
	"testing"

	"github.com/expsync/expsync/contract"
)

// TestCancelWhileOutputsAreStoredIsNotAFailure: a run cancelled after its
// process ended, while its outputs are hashed into the store (a key error
// stopping `expsync run`, serve shutting down), is Cancelled — not cached,
// run again next time — never a Failed result blaming its outputs, which
// the run cache would then keep as the run's result (CI saw "29
// succeeded, 1 failed" in TestRunWithAWrongPassphraseLosesNothing).
func TestCancelWhileOutputsAreStoredIsNotAFailure(t *testing.T) {
	for _, size := range []string{"10", "3000000"} { // kept in memory; streamed
		t.Run(size+" bytes", func(t *testing.T) {
			f := newFixture(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			// The process group has ended when Admit's release is called:
			// cancelling there lands while the outputs are collected.
			f.opts.Admit = func(context.Context) (func(), error) { return cancel, nil }
			c := shell(`mkdir -p out; head -c ` + size + ` /dev/zero > out/data; echo '{"x": 1}' > m.json`).outputs("out/").metrics("m.json").build()
			res, err := RunCached(ctx, c, f.opts)
			if err != nil {
				t.Fatal(err)
			}
			if res.Status != contract.Cancelled && res.Status != contract.Succeeded {
				t.Errorf("status %s (%s), want Cancelled (or Succeeded, had it finished storing)", res.Status, res.Error)
			}
			if cached, ok, _ := Cached(context.Background(), f.st, c); ok && cached.Status != contract.Succeeded {
				t.Errorf("the run cache keeps %s (%s) for a run that was cancelled", cached.Status, cached.Error)
			}
		})
	}
}
