package gitsource

import (
	"io"
	"log"
	"os"
	"testing"
)

func TestMain(m *testing.M) {
	// gitkit (behind gittestserver) logs every request; keep test output readable.
	log.SetOutput(io.Discard)
	os.Exit(m.Run())
}
