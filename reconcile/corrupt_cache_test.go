package reconcile

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
)

// TestCorruptStoreObjectRerunsTheRun: a cached run whose output object in
// the store no longer holds its bytes (a power cut, a disk error, an edit by
// hand) cannot be re-committed. Before, every later reconcile failed on it
// ("output out/result.txt has sha256 ..., its manifest says ...") and the
// run was never committed again; now the bad object is dropped and the run
// executes again, once.
func TestCorruptStoreObjectRerunsTheRun(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	source := h.Commit("sweep", squareExperiment(marker, "1, 2"))
	h.reconcile()
	// The results commit goes (a force-push), and one output's object rots.
	h.Git(h.Peer, "push", "-q", "--force", "origin", source+":refs/heads/main")
	sum := sha256.Sum256([]byte("1\n")) // out/result.txt of x=1
	object := filepath.Join(h.storeDir, "sha256", hex.EncodeToString(sum[:1]), hex.EncodeToString(sum[:]))
	if err := os.Chmod(object, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(object, []byte("9\n"), 0o644); err != nil {
		t.Fatal(err)
	}

	rep, err := h.reconcileErr()
	if err != nil {
		t.Fatalf("reconcile after the object rotted: %v (%+v)", err, rep)
	}
	if rep.Recovered != 1 || rep.Executed != 1 || rep.Succeeded != 2 || len(rep.Commits) == 0 {
		t.Errorf("report %+v, want x=2 recovered and x=1 executed again", rep)
	}
	if n := len(markerLines(t, marker)); n != 3 {
		t.Errorf("%d executions, want 3 (x=1 once more)", n)
	}
	for _, dir := range runFolders(t, h.Clone(), "square") {
		if err := h.verifyFolder(dir); err != nil {
			t.Errorf("verify: %v", err)
		}
	}
	if rep := h.reconcile(); !rep.NothingToDo() {
		t.Errorf("third reconcile: %+v, want nothing to do", rep)
	}
}
