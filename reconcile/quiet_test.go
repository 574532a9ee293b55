package reconcile

import (
	"io"
	"log"
	"os"
	"testing"
)

// TestMain silences the Git test server's per-request log lines (gitkit
// logs every HTTP request through the standard logger); set
// EXPSYNC_TEST_GITLOG=1 to see them.
func TestMain(m *testing.M) {
	if os.Getenv("EXPSYNC_TEST_GITLOG") == "" {
		log.SetOutput(io.Discard)
	}
	os.Exit(m.Run())
}
