package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// TestOpenLocalClearsAttemptFoldersOfAKilledPredecessor: a SIGKILLed
// expsync leaves its runs' attempt folders (context links, half-written
// outputs of any size) in <state>/work, which nothing removed: every crash
// leaked them for good. The next expsync on the state folder holds its
// lock, so every folder there is a dead one's: OpenLocal removes them,
// read-only ones too.
func TestOpenLocalClearsAttemptFoldersOfAKilledPredecessor(t *testing.T) {
	h := newHarness(t)
	work := filepath.Join(h.stateDir, "work")
	stale := filepath.Join(work, "3cc960ed6a4f-a1-4226854706")
	if err := os.MkdirAll(filepath.Join(stale, "out", "locked"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(stale, "out", "locked", "big.bin"), make([]byte, 1<<20), 0o444); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(stale, "out", "locked"), 0o555); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(stale+".log", []byte("spilled log\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left in the work folder after a restart", e.Name())
	}
}
