package reconcile

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSecretWrittenToAnOutputIsNeverCommitted, end to end: a run
// that writes its secret to an output is committed as failed, with the
// output recorded by digest (committed: false) and its bytes nowhere in the
// results commit.
func TestSecretWrittenToAnOutputIsNeverCommitted(t *testing.T) {
	const secret = "S3CR3T-VALUE-e2e-41c9"
	t.Setenv("EXPSYNC_SECRET_LAB_TOKENS_API", secret)
	h := newHarness(t)
	h.Commit("leaky", map[string]string{"experiments/leak/leak.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: leak
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out; echo $API_TOKEN > out/tok.txt; echo fine > out/ok.txt; echo token=$API_TOKEN"]
  outputs: [out/]
  env:
    - {name: API_TOKEN, secretRef: {name: lab-tokens, key: api}}
  resources: {cpu: 100m}
`})
	rep := h.reconcile()
	if rep.Executed != 1 || rep.Failed != 1 {
		t.Errorf("report: %+v", rep)
	}
	clone := h.Clone()
	dirs := runFolders(t, clone, "leak")
	if len(dirs) != 1 {
		t.Fatalf("folders: %v", dirs)
	}
	rec := readRecord(t, dirs[0])
	if rec.Status != "Failed" || !strings.Contains(rec.Reason, "output out/tok.txt holds the value of secret variable API_TOKEN") {
		t.Errorf("recorded %s: %q", rec.Status, rec.Reason)
	}
	committed := map[string]bool{}
	for _, o := range rec.Outputs {
		committed[o.Path] = o.Committed
	}
	if committed["out/tok.txt"] || !committed["out/ok.txt"] {
		t.Errorf("committed outputs %v; want out/ok.txt only", committed)
	}
	if err := h.verifyFolder(dirs[0]); err != nil {
		t.Errorf("verify: %v", err)
	}
	err := filepath.WalkDir(filepath.Join(clone, "results"), func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		if err == nil && strings.Contains(string(data), secret) {
			t.Errorf("the secret is committed in %s", p)
		}
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
}
