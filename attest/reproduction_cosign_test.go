package attest

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
)

// TestCosignVerifiesReproduction: cosign verify-blob-attestation accepts a
// reproduction statement with its predicate type, for the run folder's
// run.json (a subject), and rejects it for another predicate type and for
// an edited run.json.
func TestCosignVerifiesReproduction(t *testing.T) {
	work := t.TempDir()
	keyFile, pubFile := writeKeyPair(t, work, "expsync", KeyECDSA, "s3cret")
	t.Setenv(PasswordEnv, "s3cret")
	signer, err := LoadSigner(context.Background(), keyFile)
	if err != nil {
		t.Fatal(err)
	}
	id := testIdentity(1)
	dir := writeRunFolder(t, work, id, testRun(t, id), signer)
	writeReproduction(t, dir, "r.intoto.jsonl", testReproduction(dir), signer)
	statement := filepath.Join(dir, ReproductionsDir, "r.intoto.jsonl")
	for _, blob := range []string{RunFile, EnvelopeFile} {
		out, err := runCosign(t, work, nil, "verify-blob-attestation", "--key", pubFile, "--type", ReproductionPredicateType,
			"--insecure-ignore-tlog", "--signature", statement, filepath.Join(dir, blob))
		if err != nil || !strings.Contains(out, "Verified OK") {
			t.Fatalf("cosign rejected the reproduction statement for %s: %v\n%s", blob, err, out)
		}
	}
	if out, err := runCosign(t, work, nil, "verify-blob-attestation", "--key", pubFile, "--type", "slsaprovenance1",
		"--insecure-ignore-tlog", "--signature", statement, filepath.Join(dir, RunFile)); err == nil {
		t.Fatalf("cosign accepted the statement as SLSA provenance:\n%s", out)
	}
	edited := filepath.Join(work, "run.json")
	b := readFile(t, filepath.Join(dir, RunFile))
	writeFile(t, edited, append(b, ' '))
	if out, err := runCosign(t, work, nil, "verify-blob-attestation", "--key", pubFile, "--type", ReproductionPredicateType,
		"--insecure-ignore-tlog", "--signature", statement, edited); err == nil {
		t.Fatalf("cosign accepted an edited run.json:\n%s", out)
	}
}
