package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
)

// cosignVerifiesReproduction runs `cosign verify-blob-attestation` on a
// reproduction statement with its predicate type, for blob (a subject),
// and for a copy of blob with one more byte, which it must reject (cosign:
// findCosign).
func cosignVerifiesReproduction(t *testing.T, pub, statement, blob string) {
	t.Helper()
	bin := findCosign(t)
	work := t.TempDir()
	cosign := func(blob string) (string, error) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, bin, "verify-blob-attestation", "--key", pub, "--type", attest.ReproductionPredicateType,
			"--insecure-ignore-tlog", "--signature", statement, blob)
		// Offline: a local Rekor key (unused with --insecure-ignore-tlog)
		// keeps cosign from fetching its TUF root.
		cmd.Env = append(os.Environ(), "SIGSTORE_REKOR_PUBLIC_KEY="+pub, "TUF_ROOT="+filepath.Join(work, ".sigstore"))
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := cosign(blob); err != nil || !strings.Contains(out, "Verified OK") {
		t.Fatalf("cosign rejected the reproduction statement: %v\n%s", err, out)
	}
	edited := filepath.Join(work, filepath.Base(blob))
	data, _ := os.ReadFile(blob)
	os.WriteFile(edited, append(data, ' '), 0o644)
	if out, err := cosign(edited); err == nil {
		t.Fatalf("cosign accepted the statement for an edited %s:\n%s", filepath.Base(blob), out)
	}
}
