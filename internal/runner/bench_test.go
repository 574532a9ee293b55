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

// BenchmarkContainment puts the cost of ending every process of a run
// with it side by side (issue 9, item 6): the same trivial run through Run
// with no containment (as before), in a cgroup of its own (cgroup.go) and
// below the reaper (reaper.go), alternating per iteration, and the bare
// command. It reports the medians and each mode's median over none.
//
//	go test -run '^$' -bench Containment -benchtime 100x ./runner
func BenchmarkContainment(b *testing.B) {
	st, err := store.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	modes := []struct {
		name               string
		noCgroup, noReaper bool
	}{{"none", true, true}, {"cgroup", false, true}, {"reaper", true, false}}
	times := map[string][]time.Duration{}
	devnull, _ := os.Open(os.DevNull)
	defer devnull.Close()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		t0 := time.Now()
		cmd := exec.Command("sh", "-c", "echo hi > /dev/null")
		cmd.Stdout, cmd.Stderr = devnull, devnull
		if err := cmd.Run(); err != nil {
			b.Fatal(err)
		}
		times["bare"] = append(times["bare"], time.Since(t0))
		for _, m := range modes {
			if m.name == "cgroup" && !cgroupsAvailable() {
				continue
			}
			opts := Options{Store: st, WorkRoot: filepath.Join(b.TempDir(), "work"), NoCgroup: m.noCgroup, NoReaper: m.noReaper}
			c := contract.Contract{Version: contract.Version, RunID: randomRunID(), Image: contract.HostImage,
				Command: []string{"sh", "-c", "echo hi > out.txt"}, Outputs: []string{"out.txt"}}
			t0 := time.Now()
			res, err := Run(context.Background(), c, opts)
			if err != nil || res.Status != contract.Succeeded {
				b.Fatalf("%s: %v %+v", m.name, err, res)
			}
			times[m.name] = append(times[m.name], time.Since(t0))
		}
	}
	b.StopTimer()
	none, _ := quantiles(times["none"])
	for name, d := range times {
		med, _ := quantiles(d)
		b.ReportMetric(ms(med), name+"-median-ms")
		if name != "none" && name != "bare" {
			b.ReportMetric(float64(med)/float64(none), name+"/none")
		}
	}
}

// BenchmarkContextLinkRehashVsCopy compares the two ways of making sure no
// store object reaches a later run changed by a writer of this one (issue
// 9, item 6), side by side on a context of 16 files of 4 MiB: hard-linking
// the objects and rehashing each after the run (what the runner does), or
// copying them into the work folder (nothing shared to check).
//
//	go test -run '^$' -bench ContextLinkRehashVsCopy -benchtime 20x ./runner
func BenchmarkContextLinkRehashVsCopy(b *testing.B) {
	st, err := store.OpenLocal(b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	files := map[string]string{}
	for i := 0; i < 16; i++ {
		buf := make([]byte, 4<<20)
		for j := range buf {
			buf[j] = byte(i*7 + j)
		}
		files[filepath.Join("d", string(rune('a'+i)))] = string(buf)
	}
	ctxTree, err := store.ExportTree(context.Background(), st, tree.MemoryOf(files), "")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	var link, cp []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		work := filepath.Join(b.TempDir(), "w")
		if err := os.Mkdir(work, 0o755); err != nil {
			b.Fatal(err)
		}
		var linked []linkedObject
		t0 := time.Now()
		if err := materialiseContext(ctx, st, string(ctxTree), work, false, &linked); err != nil {
			b.Fatal(err)
		}
		r := &attemptRunner{st: st}
		if msg := r.tampered(linked); msg != "" {
			b.Fatal(msg)
		}
		link = append(link, time.Since(t0))

		work2 := filepath.Join(b.TempDir(), "w")
		if err := os.Mkdir(work2, 0o755); err != nil {
			b.Fatal(err)
		}
		t0 = time.Now()
		if err := materialiseContext(ctx, st, string(ctxTree), work2, false, nil); err != nil {
			b.Fatal(err)
		}
		cp = append(cp, time.Since(t0))
	}
	b.StopTimer()
	lm, _ := quantiles(link)
	cm, _ := quantiles(cp)
	b.ReportMetric(ms(lm), "link+rehash-median-ms")
	b.ReportMetric(ms(cm), "copy-median-ms")
	b.ReportMetric(float64(cm)/float64(lm), "copy/link+rehash")
}
