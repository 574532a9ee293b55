package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// specBesideCodeRun commits an experiment whose file sits in its context
// (the default) and returns its first run as render plans it from the
// working folder, attested as reconcile attests it.
func specBesideCodeRun(t *testing.T) (*gitRepo, gitRun, contract.Contract) {
	t.Helper()
	r := newGitRepo(t)
	r.write("experiments/pi/estimate.py", "print(3.14)\n")
	r.write("experiments/pi/pi.yaml", "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: pi}\n"+
		"spec:\n  image: host\n  command: [python3, estimate.py]\n  outputs: [out/estimate.json]\n")
	commit := r.commit("pi beside its code")
	d, err := tree.NewDir(r.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Close()
	plan, err := render.Plan(d, render.PlanOptions{})
	if err != nil || len(plan.Runs) != 1 {
		t.Fatalf("plan: %v, %d runs", err, len(plan.Runs))
	}
	c := render.Contract(plan.Runs[0])
	if c.Context.Tree != r.git("rev-parse", "HEAD:experiments/pi") || len(c.Context.Excluded) != 1 || c.Identity.ContextTree == c.Context.Tree {
		t.Fatalf("fixture: context %+v, identity tree %s", c.Context, c.Identity.ContextTree)
	}
	return r, gitRun{identity: c.Identity, run: attest.Run{
		RunID: c.RunID, Experiment: "pi", Repository: "https://git.example/lab/exps.git", Ref: "refs/heads/main",
		Commit: commit, ContextPath: c.Context.Path, ContextTree: c.Context.Tree,
		SpecPath: "experiments/pi/pi.yaml", SpecBlob: r.git("rev-parse", "HEAD:experiments/pi/pi.yaml"),
		Image: contract.HostImage, BuilderID: attest.DefaultBuilderID,
		StartedOn: time.Unix(1700000000, 0), FinishedOn: time.Unix(1700000003, 0), Status: "Succeeded",
	}}, c
}

// writeSignedRecord is writeSignedRun with the context fields run.json has.
func writeSignedRecord(t *testing.T, root string, gr gitRun, excluded []string, s *attest.Signer) string {
	t.Helper()
	dir := filepath.Join(root, "results", gr.run.Experiment, gr.run.RunID)
	rec, _ := json.Marshal(map[string]any{"runID": gr.run.RunID, "experiment": gr.run.Experiment, "identity": gr.identity,
		"contextTree": gr.run.ContextTree, "contextExcluded": excluded})
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, attest.RunFile), append(rec, '\n'), 0o644); err != nil {
		t.Fatal(err)
	}
	subjects, err := attest.HashFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	gr.run.Subjects = subjects
	env, err := attest.SignRun(gr.run, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, attest.EnvelopeFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestVerifyCLIRecomputesContextWithoutSpecFiles: the identity names the
// context without its experiment file; with --repo the verifier recomputes
// that from the attested (reachable) real tree, without it says so.
func TestVerifyCLIRecomputesContextWithoutSpecFiles(t *testing.T) {
	repo, gr, c := specBesideCodeRun(t)
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	dir := writeSignedRecord(t, t.TempDir(), gr, c.Context.Excluded, signer)

	out := expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: repo.dir}, 0, "1 verified, 0 failed")
	if strings.Contains(out, "contextTree") {
		t.Errorf("with --repo the context tree was not recomputed:\n%s", out)
	}
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}}, 0, "contextTree", "give the repository")

	// A record whose identity names the real tree (spec file included)
	// while listing it as excluded does not verify against the repository.
	forged := gr
	forged.identity.ContextTree = c.Context.Tree
	forged.run.RunID, _ = forged.identity.ID()
	dir = writeSignedRecord(t, t.TempDir(), forged, c.Context.Excluded, signer)
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: repo.dir}, 1, "contextTree", "without [pi.yaml]")
}
