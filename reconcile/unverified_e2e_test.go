package reconcile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/results"
)

// cubeExperiment is squareExperiment under another experiment name, so a
// test has two experiments sharing one context.
func cubeExperiment(marker, xs string) map[string]string {
	square := squareExperiment(marker, xs)
	return map[string]string{"experiments/cube.yaml": strings.Replace(square["experiments/square.yaml"], "name: square", "name: cube", 1)}
}

// TestSummariesListOnlyVerifiedFolders: folders pushed by hand — an
// unsigned folder with a flattering metric, a genuine folder of experiment
// square copied under cube — are neither rows, plot points nor counts of
// the regenerated READMEs; they are listed apart as unverified.
func TestSummariesListOnlyVerifiedFolders(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("two experiments", merge(squareExperiment(marker, "1, 2"), cubeExperiment(marker, "1")))
	h.reconcile()
	h.Pull()
	genuine := runFolders(t, h.Peer, "square")[0]
	copiedID := filepath.Base(genuine)

	files := merge(squareExperiment(marker, "1, 2, 3"), cubeExperiment(marker, "1, 2"))
	for _, f := range []string{results.RunFile, results.MetricsFile, results.EnvelopeFile, results.LogFile, "outputs/out/result.txt"} {
		data, err := os.ReadFile(filepath.Join(genuine, f))
		if err != nil {
			t.Fatal(err)
		}
		files["results/cube/"+copiedID+"/"+f] = string(data)
	}
	unsignedID := strings.Repeat("f0", 32)
	rec := readRecord(t, genuine)
	rec.RunID = unsignedID
	runJSON, err := results.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	files["results/square/"+unsignedID+"/"+results.RunFile] = string(runJSON)
	files["results/square/"+unsignedID+"/"+results.MetricsFile] = `{"square": 999999, "x": 1}`
	h.Commit("hand-made folders and one more point each", files)

	if rep := h.reconcile(); rep.Executed != 2 {
		t.Fatalf("want the 2 new points executed: %+v", rep)
	}
	clone := h.Clone()
	read := func(p string) string {
		data, err := os.ReadFile(filepath.Join(clone, p))
		if err != nil {
			t.Fatal(err)
		}
		return string(data)
	}
	for _, c := range []struct{ experiment, foreign, summary, reason string }{
		{"square", unsignedID, "3 verified runs: 3 succeeded", "no provenance.intoto.jsonl: the folder is not signed"},
		{"cube", copiedID, "2 verified runs: 2 succeeded", `attests experiment "square"`},
	} {
		readme := read("results/" + c.experiment + "/README.md")
		table, apart, ok := strings.Cut(readme, "Unverified folders")
		if !ok {
			t.Errorf("%s README has no unverified section:\n%s", c.experiment, readme)
			continue
		}
		if strings.Contains(table, c.foreign[:12]) || !strings.Contains(table, c.summary) {
			t.Errorf("%s README table counts or lists foreign folder %s:\n%s", c.experiment, c.foreign[:12], readme)
		}
		if !strings.Contains(apart, "`"+c.foreign+"`") || !strings.Contains(apart, c.reason) {
			t.Errorf("%s README does not list %s as unverified (%s):\n%s", c.experiment, c.foreign[:12], c.reason, apart)
		}
		if strings.Contains(readme, "999999") || strings.Contains(read("results/"+c.experiment+"/plot.svg"), "999999") {
			t.Errorf("%s README or plot shows the unsigned metric", c.experiment)
		}
	}
	index := read("results/README.md")
	for _, row := range []string{"| [cube](cube/) | 2 | 2 | 0 | 1 |", "| [square](square/) | 3 | 3 | 0 | 1 |"} {
		if !strings.Contains(index, row) {
			t.Errorf("index lacks %q:\n%s", row, index)
		}
	}
}
