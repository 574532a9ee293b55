package reconcile

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/tree"
)

// TestVerifiedTreesAreKeyedByContentPathAndExperiment checks what a
// remembered verification stands for: the same folder content (tree ID) at
// the same path for the same experiment. A folder edited after it verified,
// copied to another run's path, or read for another experiment is verified
// again (here: fails, as it carries no valid signature); failures are never
// remembered.
func TestVerifiedTreesAreKeyedByContentPathAndExperiment(t *testing.T) {
	runID := strings.Repeat("ab", 32)
	other := strings.Repeat("cd", 32)
	dir := "results/pi/" + runID
	snap := tree.NewMemory()
	for name, data := range map[string]string{
		"run.json":                `{"runID":"` + runID + `","experiment":"pi"}`,
		"metrics.json":            `{"m": 1}`,
		"provenance.intoto.jsonl": `{"payloadType":"forged"}`,
	} {
		if err := snap.Write(dir+"/"+name, []byte(data), tree.ModeFile); err != nil {
			t.Fatal(err)
		}
		if err := snap.Write("results/pi/"+other+"/"+name, []byte(data), tree.ModeFile); err != nil {
			t.Fatal(err)
		}
	}
	r := &Reconciler{}
	if _, _, err := r.verifyFolderOnce(snap, dir, runID, "pi"); err == nil {
		t.Fatal("a folder with a forged envelope verified")
	}
	if len(r.verified.m) != 0 {
		t.Fatalf("a failed verification was remembered: %v", r.verified.m)
	}

	// As if this exact folder had verified before.
	e, err := snap.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	want := &results.Record{RunID: runID, Experiment: "pi", Status: contract.Succeeded}
	r.verified.put(verifiedKey{tree: e.Hash, dir: dir, experiment: "pi"}, want, []byte(`{"m": 1}`))
	got, metrics, err := r.verifyFolderOnce(snap, dir, runID, "pi")
	if err != nil {
		t.Fatalf("a folder whose tree verified before: %v", err)
	}
	if diff := cmp.Diff(want, got); diff != "" || string(metrics) != `{"m": 1}` {
		t.Errorf("remembered record (-want +got):\n%s\nmetrics %s", diff, metrics)
	}
	got.Status = contract.Failed // callers own their copy
	if again, _, _ := r.verifyFolderOnce(snap, dir, runID, "pi"); again.Status != contract.Succeeded {
		t.Errorf("a caller's edit changed the remembered record")
	}

	if _, _, err := r.verifyFolderOnce(snap, dir, runID, "other"); err == nil {
		t.Errorf("the folder counted for another experiment without a check")
	}
	if _, _, err := r.verifyFolderOnce(snap, "results/pi/"+other, other, "pi"); err == nil {
		t.Errorf("the same content at another run's path counted without a check")
	}
	if err := snap.Write(dir+"/metrics.json", []byte(`{"m": 1000}`), tree.ModeFile); err != nil {
		t.Fatal(err)
	}
	if _, _, err := r.verifyFolderOnce(snap, dir, runID, "pi"); err == nil {
		t.Errorf("a folder edited after it verified counted without a check")
	}
}
