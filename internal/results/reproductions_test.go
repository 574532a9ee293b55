package results

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/tree"
)

// TestREADMEListsReproductions: a run with verified statements gets a
// "reproduced" cell with the latest verdict and a row per statement; an
// unverified statement is listed apart and counts for nothing.
func TestREADMEListsReproductions(t *testing.T) {
	runs := sweepRuns()
	runs[0].Reproductions = []Reproduction{
		{File: "20261201T090000Z-a.intoto.jsonl", Verdict: "differs", BuilderID: "https://expsync.dev/builder/local/unisolated", FinishedOn: "2026-12-01T09:00:00Z"},
		{File: "20261202T090000Z-a.intoto.jsonl", Verdict: "identical", BuilderID: "https://expsync.dev/builder/local/unisolated", FinishedOn: "2026-12-02T09:00:00Z"},
	}
	runs[1].Reproductions = []Reproduction{{File: "forged.intoto.jsonl", Unverified: "signature: 0 of 1 required trusted keys signed"}}
	page := string(RenderExperiment("pi", runs, nil).Readme)
	for _, want := range []string{
		"| reproduced |",
		"| ✓ identical (2×) |",
		"## Reproductions",
		"2 reproductions of these runs executed again from their attestations alone (`expsync reproduce`, or serve's audit): 1 identical, 0 within the spec's tolerances, 1 differ.",
		"| identical | https://expsync.dev/builder/local/unisolated | 2026-12-02T09:00:00Z | [20261202T090000Z-a.intoto.jsonl](" + runs[0].Record.RunID + "/reproductions/20261202T090000Z-a.intoto.jsonl) |",
		"## ⚠ Unverified reproduction statements",
		"/reproductions/forged.intoto.jsonl`: signature: 0 of 1 required trusted keys signed",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("README lacks %q:\n%s", want, page)
		}
	}
	// Without statements the README is the one it was.
	plain := sweepRuns()
	if strings.Contains(string(RenderExperiment("pi", plain, nil).Readme), "reproduc") {
		t.Error("a README without reproductions mentions them")
	}
}

func TestAddReproductions(t *testing.T) {
	rec := aRun("pi", map[string]any{"seed": 1}).record()
	head := tree.NewMemory()
	writeAll(t, head, folderOf(t, rec, `{"m": 1}`, `{"sig":"theirs"}`))
	dir := "results/pi/" + rec.RunID
	existing := dir + "/reproductions/old.intoto.jsonl"
	writeAll(t, head, map[string][]byte{existing: []byte("old")})
	// The README was drawn with plots its spec chose: they stay.
	choices := []PlotChoice{{X: "seed", Y: "m"}}
	writeAll(t, head, map[string][]byte{"results/pi/README.md": RenderExperiment("pi", []Run{{Record: rec}}, choices).Readme})
	gone := "results/pi/" + strings.Repeat("d", 64) + "/reproductions/x.intoto.jsonl"
	statements := map[string][]byte{
		dir + "/reproductions/new.intoto.jsonl": []byte("new"),
		existing:                                []byte("again"),
		gone:                                    []byte("about a folder not in head"),
	}
	opts := MergeOptions{
		Verify: func(tree.Reader, string, string) error { return nil },
		Reproductions: func(r tree.Reader, runDir string) []Reproduction {
			entries, _ := r.ReadDir(runDir + "/reproductions")
			var out []Reproduction
			for _, e := range entries {
				out = append(out, Reproduction{File: e.Name, Verdict: "identical", BuilderID: "b", FinishedOn: e.Name})
			}
			return out
		},
	}
	changes, added, err := Layout{}.AddReproductions(head, statements, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{dir + "/reproductions/new.intoto.jsonl"}, added); diff != "" {
		t.Errorf("added (-want +got):\n%s", diff)
	}
	if string(changes[dir+"/reproductions/new.intoto.jsonl"]) != "new" || changes[existing] != nil || changes[gone] != nil {
		t.Errorf("changes %v", changedPaths(changes))
	}
	readme := string(changes["results/pi/README.md"])
	if !strings.Contains(readme, "2 reproductions") || !strings.Contains(readme, "new.intoto.jsonl") || !strings.Contains(readme, PlotsMarker(choices)) {
		t.Errorf("README:\n%s", readme)
	}
	if changes["results/README.md"] == nil {
		t.Error("index not regenerated")
	}
	if _, _, err := (Layout{}).AddReproductions(head, map[string][]byte{dir + "/run.json": []byte("x")}, opts); err == nil {
		t.Error("a file outside reproductions/ was accepted")
	}
	if _, _, err := (Layout{}).AddReproductions(head, map[string][]byte{dir + "/reproductions/../run.json": []byte("x")}, opts); err == nil {
		t.Error("an escaping path was accepted")
	}
}

// TestMergeKeepsAFolderWithReproductions: a head folder holding our run's
// files plus reproduction statements is the same result (Identical): the
// statements stay.
func TestMergeKeepsAFolderWithReproductions(t *testing.T) {
	rec := aRun("pi", map[string]any{"seed": 1}).record()
	files := folderOf(t, rec, `{"m": 1}`, `{"sig":"ours"}`)
	head := tree.NewMemory()
	writeAll(t, head, files)
	writeAll(t, head, map[string][]byte{"results/pi/" + rec.RunID + "/reproductions/a.intoto.jsonl": []byte("s")})
	changes, report, err := Layout{}.Merge(head, files, MergeOptions{Replace: func(tree.Reader, string) bool { return true }})
	if err != nil {
		t.Fatal(err)
	}
	if len(report.Identical) != 1 || len(changes) != 0 {
		t.Errorf("report %+v, changes %v", report, changedPaths(changes))
	}
}

func changedPaths(c Changes) []string {
	var out []string
	for k := range c {
		out = append(out, k)
	}
	return out
}
