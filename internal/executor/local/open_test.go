package local

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/expsync/expsync/store"
)

// TestOpenClearsAttemptFoldersOfAKilledPredecessor: a SIGKILLed
// expsync leaves its runs' attempt folders (context links, half-written
// outputs of any size) in <state>/work, which nothing removed: every crash
// leaked them for good. The next expsync on the state folder holds its
// lock, so every folder there is a dead one's: Open removes them,
// read-only ones too.
func TestOpenClearsAttemptFoldersOfAKilledPredecessor(t *testing.T) {
	stateDir := t.TempDir()
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	work := filepath.Join(stateDir, "work")
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
	ex, _, err := Open(ctx, DeploymentOptions{Store: st, StateDir: stateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer ex.Shutdown(context.Background())
	entries, err := os.ReadDir(work)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("%s left in the work folder after a restart", e.Name())
	}
}
