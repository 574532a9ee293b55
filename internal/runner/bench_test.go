package runner

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// BenchmarkRunnerOverhead starts the same trivial command bare with os/exec
// and through Run (small context materialised, log captured and stored,
// output hashed into the store), alternating per iteration so both see the
// same noise, and reports median and p95 of each side by side.
//
//	go test -run '^$' -bench RunnerOverhead -benchtime 300x ./runner
func BenchmarkRunnerOverhead(b *testing.B) {
	st, err := store.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	m := tree.MemoryOf(map[string]string{"run.py": "print(1)\n", "experiment.yaml": "kind: Experiment\n", "README.md": "# exp\n"})
	ctxTree, err := store.ExportTree(context.Background(), st, m, "")
	if err != nil {
		b.Fatal(err)
	}
	opts := Options{Store: st, WorkRoot: filepath.Join(b.TempDir(), "work")}
	script := `echo hi > out.txt`
	bareDir := b.TempDir()
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()

	var bare, run []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cmd := exec.Command("sh", "-c", script)
		cmd.Dir, cmd.Stdout, cmd.Stderr = bareDir, devnull, devnull
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		bare = append(bare, time.Since(t0))

		c := contract.Contract{Version: contract.Version, RunID: randomRunID(), Image: contract.HostImage,
			Command: []string{"sh", "-c", script}, Context: contract.Context{Tree: string(ctxTree)}, Outputs: []string{"out.txt"}}
		t0 = time.Now()
		res, err := Run(context.Background(), c, opts)
		if err != nil || res.Status != contract.Succeeded {
			b.Fatalf("run: %v %+v", err, res)
		}
		run = append(run, time.Since(t0))
	}
	b.StopTimer()
	bm, bp := quantiles(bare)
	rm, rp := quantiles(run)
	b.ReportMetric(ms(bm), "bare-median-ms")
	b.ReportMetric(ms(bp), "bare-p95-ms")
	b.ReportMetric(ms(rm), "runner-median-ms")
	b.ReportMetric(ms(rp), "runner-p95-ms")
	b.ReportMetric(ms(rm-bm), "overhead-median-ms")
	b.ReportMetric(ms(rp-bp), "overhead-p95-ms")
	b.ReportMetric(float64(rm)/float64(bm), "runner/bare-median")
}

func quantiles(d []time.Duration) (median, p95 time.Duration) {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2], s[min(len(s)-1, len(s)*95/100)]
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
