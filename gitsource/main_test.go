package gitsource

import (
	"io"
	"log"
	"os"
	"path/filepath"
	"testing"
)

func TestMain(m *testing.M) {
	// gitkit (behind gittestserver) logs every request; keep test output readable.
	log.SetOutput(io.Discard)
	code := m.Run()
	// Benchmarks generate a repository and build a helper once per run.
	if bigRepo.root != "" {
		os.RemoveAll(bigRepo.root)
	}
	if fetchChild.path != "" {
		os.RemoveAll(filepath.Dir(fetchChild.path))
	}
	os.Exit(code)
}
