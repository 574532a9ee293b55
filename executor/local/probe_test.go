package local

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/runner"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

func TestProbe(t *testing.T) {
	root := t.TempDir()
	st, _ := store.OpenLocal(filepath.Join(root, "store"))
	m := tree.MemoryOf(map[string]string{"run.py": "print(1)\n", "experiment.yaml": "kind: Experiment\n", "README.md": "# exp\n"})
	ctxTree, _ := store.ExportTree(context.Background(), st, m, "")
	ex, _ := New(Options{Store: st, StateDir: filepath.Join(root, "state"), MemoryBytes: 1 << 30,
		Runner: runner.Options{WorkRoot: filepath.Join(root, "work")}})
	defer ex.Shutdown(context.Background())
	var jobs []*Job
	t0 := time.Now()
	for n := range 200 {
		c := contract.Contract{Version: contract.Version, RunID: randomRunID(), Image: contract.HostImage,
			Command: []string{"sh", "-c", `echo "$0" > out.txt`, fmt.Sprint(n)}, Context: contract.Context{Tree: string(ctxTree)},
			Outputs: []string{"out.txt"}}
		j, _ := ex.Submit(c, nil)
		jobs = append(jobs, j)
	}
	var proc, total float64
	for _, j := range jobs {
		res, _ := j.Result()
		proc += res.Usage.WallSeconds
		total += res.FinishedAt.Sub(res.StartedAt).Seconds()
	}
	el := time.Since(t0)
	t.Logf("elapsed %v; per run: process wall %.2fms, Run wall %.2fms", el, proc/200*1000, total/200*1000)
}
