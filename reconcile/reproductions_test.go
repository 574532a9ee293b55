package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/attest"
)

// statementFor signs a reproduction statement about the run folder dir
// with the key file key.
func statementFor(t *testing.T, dir, key string) string {
	t.Helper()
	signer, err := attest.LoadSigner(context.Background(), key)
	if err != nil {
		t.Fatal(err)
	}
	envelope, _ := os.ReadFile(filepath.Join(dir, attest.EnvelopeFile))
	runJSON, _ := os.ReadFile(filepath.Join(dir, attest.RunFile))
	st := attest.ReproductionStatementFor(envelope, runJSON, attest.Reproduction{
		RunID: filepath.Base(dir), Experiment: "square", Verdict: attest.VerdictIdentical, Status: attest.ItemIdentical,
		Reproduced: attest.RunOutcome{BuilderID: attest.DefaultBuilderID, FinishedOn: "2026-12-07T18:00:00Z", Status: "Succeeded"}})
	data, err := attest.SignReproduction(st, signer)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// TestReproductionStatementsInTheBranch: statements committed into run
// folders — one by the deployment's key, one forged — never make the
// planner rerun those runs, stay in the branch across the next results
// commit, and the README that commit writes lists the genuine one and, apart,
// the forged one.
func TestReproductionStatementsInTheBranch(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("square", squareExperiment(marker, "1, 2"))
	h.reconcile()
	h.Pull()
	folders := runFolders(t, h.Peer, "square")
	other, _ := writeKeyPair(t, t.TempDir(), "other")
	genuine := "results/square/" + filepath.Base(folders[0]) + "/reproductions/20261207T180000Z-deploy.intoto.jsonl"
	forged := "results/square/" + filepath.Base(folders[1]) + "/reproductions/20261207T180000Z-other.intoto.jsonl"
	files := squareExperiment(marker, "1, 2, 3")
	files[genuine] = statementFor(t, folders[0], h.key)
	files[forged] = statementFor(t, folders[1], other)
	h.Commit("statements and one more point", files)

	rep := h.reconcile()
	if rep.Executed != 1 || len(rep.Untrusted) != 0 {
		t.Fatalf("want only the new point executed and no folder untrusted: %+v", rep)
	}
	clone := h.Clone()
	for _, p := range []string{genuine, forged} {
		if _, err := os.Stat(filepath.Join(clone, p)); err != nil {
			t.Errorf("%s is gone from the branch: %v", p, err)
		}
	}
	readme, _ := os.ReadFile(filepath.Join(clone, "results", "square", "README.md"))
	section, apart, _ := strings.Cut(string(readme), "Unverified reproduction statements")
	if !strings.Contains(section, "## Reproductions") || !strings.Contains(section, "20261207T180000Z-deploy.intoto.jsonl") || strings.Contains(section, "-other.") {
		t.Errorf("README does not list the genuine statement alone:\n%s", readme)
	}
	if !strings.Contains(apart, "20261207T180000Z-other.intoto.jsonl") || !strings.Contains(apart, "required trusted keys signed") {
		t.Errorf("README does not list the forged statement apart:\n%s", readme)
	}
}
