package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"path"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// TestWritersStayBelowReaders: every limit on what expsync writes into a
// results folder is strictly below every reader's (contract/limits.go), and
// the Git snapshot reads files of that size.
func TestWritersStayBelowReaders(t *testing.T) {
	const gitSnapshotFile = 32 << 20 // gitsource's default MaxFileBytes
	for _, pair := range []struct {
		what           string
		writer, reader int64
	}{
		{"run.json, read by attest, the reconciler and `expsync verify`", contract.MaxRecordBytes, contract.ReadRecordBytes},
		{"run.json, read back by the summaries", contract.MaxRecordBytes, (results.MergeOptions{}).MaxBytes()},
		{"metrics.json, read by the reconciler", contract.MaxMetricsBytes, contract.ReadMetricsBytes},
		{"metrics.json, read back by the summaries", contract.MaxMetricsBytes, (results.MergeOptions{}).MaxBytes()},
		{"the envelope, read by attest", contract.MaxEnvelopeBytes, attest.MaxEnvelopeBytes},
		{"the envelope, read from a Git snapshot", contract.MaxEnvelopeBytes, gitSnapshotFile},
		{"run.json, read from a Git snapshot", contract.MaxRecordBytes, gitSnapshotFile},
	} {
		if pair.writer >= pair.reader {
			t.Errorf("%s: the writer's limit %d is not below the reader's %d", pair.what, pair.writer, pair.reader)
		}
	}
}

// TestAnyFolderExpsyncWritesVerifies is the property of issue 9, item 4:
// whatever run the runner can record — up to MaxOutputFiles files, paths of
// up to MaxOutputPathBytes, MaxOutputNameBytes of names in all, a metrics
// file at the runner's limit, messages cut to MaxMessageBytes — expsync
// builds and signs a folder that its own readers verify: the reconciler's
// check (a genuine folder is never taken for a forged one, so it is never
// committed again at every poll), the summaries' reader and the run.json a
// reviewer reads. Sizes are drawn at random, the extremes always included.
func TestAnyFolderExpsyncWritesVerifies(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and verifies folders of up to 10,000 outputs")
	}
	r, st := propertyReconciler(t)
	rng := rand.New(rand.NewPCG(9, 4))
	shapes := []runShape{
		{files: contract.MaxOutputFiles, pathBytes: contract.MaxOutputNameBytes / contract.MaxOutputFiles},
		{files: contract.MaxOutputNameBytes / contract.MaxOutputPathBytes, pathBytes: contract.MaxOutputPathBytes},
		{files: 1, pathBytes: contract.MaxOutputPathBytes, metricsBytes: 1 << 20},
		{files: 0, metricsBytes: 1 << 20, reasonBytes: 1 << 20},
	}
	for i := 0; i < 3; i++ {
		files := rng.IntN(contract.MaxOutputFiles + 1)
		per := 10
		if files > 0 {
			per = max(10, rng.IntN(min(contract.MaxOutputPathBytes, contract.MaxOutputNameBytes/max(files, 1))+1))
		}
		shapes = append(shapes, runShape{files: files, pathBytes: per, metricsBytes: rng.IntN(1 << 20), reasonBytes: rng.IntN(64 << 10)})
	}
	for i, shape := range shapes {
		t.Run(fmt.Sprintf("%d files of %d bytes, metrics %d, reason %d", shape.files, shape.pathBytes, shape.metricsBytes, shape.reasonBytes), func(t *testing.T) {
			run, res := shape.build(t, st, int64(i))
			folder, err := r.buildFolder(context.Background(), propertyTarget, results.Layout{}, run, res)
			if err != nil {
				t.Fatalf("build: %v", err)
			}
			for name, limit := range map[string]int{results.RunFile: contract.MaxRecordBytes, results.MetricsFile: contract.MaxMetricsBytes, results.EnvelopeFile: contract.MaxEnvelopeBytes} {
				if n := len(folder.File(name)); n > limit {
					t.Errorf("%s has %d bytes, over the writer's limit %d", name, n, limit)
				}
			}
			snap := tree.NewMemory()
			for p, data := range folder.Files() {
				if err := snap.Write(p, data, tree.ModeFile); err != nil {
					t.Fatal(err)
				}
			}
			rec, _, err := r.verifyFolderOnce(snap, folder.Dir, run.ID, run.Experiment)
			if err != nil {
				t.Fatalf("the reconciler takes the folder expsync wrote for a forged one: %v", err)
			}
			if len(rec.Outputs) != shape.files && rec.Status != contract.Failed {
				t.Errorf("%d outputs recorded, want %d", len(rec.Outputs), shape.files)
			}
			if _, err := (results.Layout{}).ReadRun(snap, folder.Dir, (results.MergeOptions{}).MaxBytes()); err != nil {
				t.Errorf("the summaries cannot read it: %v", err)
			}
			t.Logf("run.json %d bytes, metrics.json %d, envelope %d, %d files committed", len(folder.File(results.RunFile)),
				len(folder.File(results.MetricsFile)), len(folder.File(results.EnvelopeFile)), len(folder.Files()))
		})
	}
}

// runShape is the size of one run's record.
type runShape struct {
	files, pathBytes, metricsBytes, reasonBytes int
}

// build makes a run and its result of this shape, its outputs (one byte
// each, so every one is committed) and metrics file in st.
func (s runShape) build(t *testing.T, st store.Store, seed int64) (render.Run, *contract.Result) {
	t.Helper()
	ctx := context.Background()
	obj, err := st.Put(ctx, strings.NewReader("x"), "")
	if err != nil {
		t.Fatal(err)
	}
	id := contract.Identity{IDVersion: 1, Experiment: "big", Image: contract.HostImage, Command: []string{"true"},
		Params: map[string]any{"seed": seed}, ContextTree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904"}
	runID, err := id.ID()
	if err != nil {
		t.Fatal(err)
	}
	c := contract.Contract{Version: contract.Version, RunID: runID, Experiment: "big", Identity: id, Image: id.Image,
		Command: id.Command, Context: contract.Context{Tree: id.ContextTree}, Outputs: []string{"o/"}}
	now := time.Now().UTC()
	res := &contract.Result{RunID: runID, Status: contract.Succeeded, Attempts: 1, StartedAt: now, FinishedAt: now,
		SchedulingDigest: c.SchedulingDigest(), Error: contract.Truncate(strings.Repeat("r", s.reasonBytes))}
	for i := 0; i < s.files; i++ {
		name := fmt.Sprintf("o/%08d-", i)
		name += strings.Repeat("n", max(0, s.pathBytes-len(name)))
		// A path is at most MaxOutputPathBytes, each name at most 255
		// bytes: long paths are folders of long names.
		name = folded(name)
		res.Outputs = append(res.Outputs, contract.File{Path: name, Mode: store.ModeFile, SHA256: obj.SHA256, Size: obj.Size})
	}
	if s.metricsBytes > 0 {
		var b bytes.Buffer
		b.WriteString("{")
		for i := 0; b.Len() < s.metricsBytes-24; i++ {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `"m%d":%d`, i, i)
		}
		b.WriteString("}")
		m, err := st.Put(ctx, bytes.NewReader(b.Bytes()), "")
		if err != nil {
			t.Fatal(err)
		}
		res.MetricsSHA256 = m.SHA256
		if err := json.Unmarshal(b.Bytes(), &res.Metrics); err != nil {
			t.Fatal(err)
		}
	}
	return render.Run{ID: runID, Experiment: "big", SpecPath: "experiments/big.yaml", Params: id.Params, Contract: c}, res
}

// folded splits a long name into 200-byte folders.
func folded(name string) string {
	var parts []string
	for len(name) > 200 {
		parts = append(parts, name[:200])
		name = name[200:]
	}
	return path.Join(append(parts, name)...)
}

var propertyTarget = Target{Repository: "https://git.example/lab/exps.git", Ref: "refs/heads/main",
	Commit: "0123456789abcdef0123456789abcdef01234567"}

func propertyReconciler(t *testing.T) (*Reconciler, store.Store) {
	t.Helper()
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	keyFile, _ := writeKeyPair(t, t.TempDir(), "k")
	signer, err := attest.LoadSigner(context.Background(), keyFile)
	if err != nil {
		t.Fatal(err)
	}
	key, err := attest.NewKey("k", signer.Public())
	if err != nil {
		t.Fatal(err)
	}
	return &Reconciler{Store: st, Signer: signer, Trusted: attest.Verifiers{key}, BuilderID: attest.DefaultBuilderID}, st
}
