package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
)

// TestCorruptRepositoryInputIsExportedAgain: a repository input whose
// object in the store was cut short on disk (a power cut) is exported
// from the tree again before a run uses it. Before, the store's name was
// trusted: the next run read the short file and its result was attested
// as the genuine input's.
func TestCorruptRepositoryInputIsExportedAgain(t *testing.T) {
	h := newHarness(t)
	data := strings.Repeat("a row of the data set\n", 5000) // beyond what the store keeps in memory
	experiment := func(xs string) map[string]string {
		return map[string]string{
			"data/in.txt": data,
			"experiments/count.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: count
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out; wc -l < in.txt > out/lines.txt"]
  inputs:
    - {name: table, file: data/in.txt, path: in.txt}
  sweep:
    matrix:
      x: [` + xs + `]
  outputs: [out/lines.txt]
  resources: {cpu: 100m}
`,
		}
	}
	h.Commit("one run", experiment("1"))
	if rep := h.reconcile(); rep.Succeeded != 1 {
		t.Fatalf("first reconcile: %+v", rep)
	}
	sum := sha256.Sum256([]byte(data))
	object := filepath.Join(h.storeDir, "sha256", hex.EncodeToString(sum[:1]), hex.EncodeToString(sum[:]))
	if err := os.Chmod(object, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(object, []byte(data[:22*10]), 0o444); err != nil {
		t.Fatal(err)
	}

	h.Pull()
	h.Commit("another run", experiment("1, 2"))
	rep, err := h.reconcileErr()
	if err != nil || rep.Executed != 1 || rep.Succeeded != 1 {
		t.Fatalf("second reconcile: %+v, %v", rep, err)
	}
	for _, dir := range runFolders(t, h.Clone(), "count") {
		if got := strings.TrimSpace(string(mustRead(t, filepath.Join(dir, "outputs", "out", "lines.txt")))); got != "5000" {
			t.Errorf("%s counted %s lines, want 5000: the run read the corrupt object", filepath.Base(dir), got)
		}
	}
	if got := contract.SHA256Hex(mustRead(t, object)); got != hex.EncodeToString(sum[:]) {
		t.Errorf("the store object was not restored (sha256 %s)", got)
	}
}
