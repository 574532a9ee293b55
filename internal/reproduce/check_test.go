package reproduce

import (
	"context"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/store"
)

// TestPrepareSaysWhyBeforeRunning: what this machine lacks is named with
// what to do — an image, GPUs, CPUs, memory, a secret, the disk for the
// attested outputs, the repository for the context — and nothing is asked
// of the store beyond what it already has.
func TestPrepareSaysWhyBeforeRunning(t *testing.T) {
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	m := &Material{Record: &results.Record{Outputs: []results.Output{{Path: "out/huge.bin", Size: 40 << 30}}, LogSize: 1 << 20}}
	c := contract.Contract{RunID: strings.Repeat("a", 64), Image: "registry.example/lab/train@sha256:" + strings.Repeat("b", 64),
		Identity: contract.Identity{Image: "sha256:" + strings.Repeat("b", 64)},
		Env:      []contract.EnvVar{{Name: "TOKEN", SecretRef: &contract.SecretRef{Name: "lab", Key: "token"}}},
		Limits:   contract.Limits{GPU: 2, CPU: "64", Memory: "1Ti"},
		Context:  contract.Context{Tree: strings.Repeat("c", 40)}}
	mach := Machine{Store: st, CPUs: 2, MemoryBytes: 8 << 30, FreeBytes: func(string) (int64, error) { return 10 << 30, nil }}
	problems, _, err := Prepare(context.Background(), m, c, mach)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, p := range problems {
		got[p.Check] = p.String()
	}
	for check, want := range map[string]string{
		"image":   "this machine runs local processes only",
		"gpu":     "requests 2 GPU(s) and this machine offers 0 (run it on a machine with the GPUs, and say how many with --gpus N)",
		"cpu":     "requests 64 CPUs and this machine has 2",
		"memory":  "requests 1Ti of memory and this machine has 8Gi available",
		"secrets": "needs secret lab/token, which this machine does not have (set EXPSYNC_SECRET_LAB_TOKEN or give --secrets-file)",
		"disk":    "the run's outputs and log were 40.0 GiB; ",
		"context": "no repository to read the context tree",
	} {
		if !strings.Contains(got[check], want) {
			t.Errorf("%s: %q, want it to say %q", check, got[check], want)
		}
	}
}
