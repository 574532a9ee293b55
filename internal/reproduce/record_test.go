package reproduce

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/attest"
)

func testOutcome(t *testing.T, dir string) (*Outcome, *attest.Signer) {
	t.Helper()
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := attest.NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	runID := strings.Repeat("ab", 32)
	return &Outcome{Path: dir, RunID: runID, Material: &Material{Envelope: []byte("envelope"), RunJSON: []byte("run.json")},
		Reproduction: &attest.Reproduction{RunID: runID, Experiment: "e", Verdict: attest.VerdictIdentical, Status: attest.ItemIdentical,
			Reproduced: attest.RunOutcome{BuilderID: attest.DefaultBuilderID, FinishedOn: "2026-12-07T17:04:05Z", Status: "Succeeded"}}}, signer
}

// TestWriteNeverReplaces: two statements finished in the same second by
// the same key sit side by side, each verifying.
func TestWriteNeverReplaces(t *testing.T) {
	dir := t.TempDir()
	o, signer := testOutcome(t, dir)
	first, err := Write(o, signer)
	if err != nil {
		t.Fatal(err)
	}
	second, err := Write(o, signer)
	if err != nil {
		t.Fatal(err)
	}
	if first == second || !strings.HasSuffix(second, "-2.intoto.jsonl") {
		t.Fatalf("paths %s and %s", first, second)
	}
	key, _ := attest.NewKey("k", signer.Public())
	for _, p := range []string{first, second} {
		data, _ := os.ReadFile(p)
		if _, err := attest.VerifyReproduction(data, attest.Verifiers{key}, attest.VerifyOptions{}); err != nil {
			t.Errorf("%s: %v", p, err)
		}
		if !attest.IsReproductionFile(attest.ReproductionsDir + "/" + filepath.Base(p)) {
			t.Errorf("%s is not a valid statement name", p)
		}
	}
}

// TestWriteStaysInTheRunFolder: a reproductions/ that is a symlink (the run
// under test can write where its user can) does not send the statement
// elsewhere.
func TestWriteStaysInTheRunFolder(t *testing.T) {
	dir, elsewhere := t.TempDir(), t.TempDir()
	if err := os.Symlink(elsewhere, filepath.Join(dir, attest.ReproductionsDir)); err != nil {
		t.Fatal(err)
	}
	o, signer := testOutcome(t, dir)
	if _, err := Write(o, signer); err == nil {
		t.Fatal("wrote through a symlink")
	}
	if entries, _ := os.ReadDir(elsewhere); len(entries) != 0 {
		t.Fatalf("a file was written outside the run folder: %v", entries)
	}
}
