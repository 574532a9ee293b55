package reconcile

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// plotsExperiment sweeps lr and seed; each run reports loss and acc. plots
// is the spec.plots block (may be empty).
func plotsExperiment(lrs, plots string) map[string]string {
	return map[string]string{
		"experiments/train/train.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: train
spec:
  image: host
  command: ["sh", "train.sh", "{{params.lr}}", "{{params.seed}}"]
  sweep:
    matrix:
      lr: [` + lrs + `]
      seed: [1, 2]
  metrics: m.json
  resources: {cpu: 100m, memory: 16Mi}
` + plots,
		"experiments/train/train.sh": `printf '{"loss": %s, "acc": 0.%s}\n' "$1" "$2" > m.json
`,
	}
}

// TestChosenPlotIsCommitted: `expsync run` of a sweep whose spec chooses
// plots commits a README that links the chosen metric's plot and whose SVG
// names the metric and the parameter on its axes; a chosen metric no run
// reports is a note, not an SVG. Choosing other plots with the next sweep
// value reruns nothing else and redraws the plots; so does a commit that
// changes nothing but the plots.
func TestChosenPlotIsCommitted(t *testing.T) {
	h := newHarness(t)
	h.Commit("sweep with plots", plotsExperiment("0.1, 0.01", "  plots:\n    - {metric: loss, against: lr}\n    - {metric: f1, against: seed}\n"))
	if rep := h.reconcile(); rep.Executed != 4 || rep.Succeeded != 4 {
		t.Fatalf("report %+v, want 4 runs succeeded", rep)
	}
	clone := h.Clone()
	readme := readFile(t, clone, "results/train/README.md")
	for _, want := range []string{
		"![loss against lr](plot.svg)\n",
		"> Plot of `f1` against `seed` not drawn: no run reported it; the runs reported `acc`, `loss`",
	} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q:\n%s", want, readme)
		}
	}
	assertAxes(t, readFile(t, clone, "results/train/plot.svg"), "lr", "loss")
	if _, err := os.Stat(filepath.Join(clone, "results/train/plot-2.svg")); err == nil {
		t.Errorf("the plot of a metric no run reported was committed")
	}

	// New plots with one more lr: only the new point's runs execute (plots
	// are not part of a run's identity), and the plots follow the spec.
	h.Pull()
	h.Commit("other plots", plotsExperiment("0.1, 0.01, 0.001", "  plots:\n    - {metric: acc, against: seed}\n    - {metric: loss, against: lr}\n"))
	h.Pull()
	if rep := h.reconcile(); rep.Executed != 2 || rep.Done != 4 {
		t.Fatalf("report %+v, want the 2 new runs executed and the 4 others done", rep)
	}
	clone = h.Clone()
	readme = readFile(t, clone, "results/train/README.md")
	for _, want := range []string{"![acc against seed](plot.svg)\n", "![loss against lr](plot-2.svg)\n"} {
		if !strings.Contains(readme, want) {
			t.Errorf("README lacks %q:\n%s", want, readme)
		}
	}
	if strings.Contains(readme, "not drawn") {
		t.Errorf("README still has the old note:\n%s", readme)
	}
	assertAxes(t, readFile(t, clone, "results/train/plot.svg"), "seed", "acc")
	assertAxes(t, readFile(t, clone, "results/train/plot-2.svg"), "lr (log scale)", "loss")
	if n := len(runFolders(t, clone, "train")); n != 6 {
		t.Errorf("%d run folders, want 6", n)
	}

	// A commit that edits nothing but plots runs nothing and redraws them
	// in one results commit; the next reconcile (of that commit) does
	// nothing at all.
	h.Pull()
	h.Commit("plots only", plotsExperiment("0.1, 0.01, 0.001", "  plots: [{metric: acc, against: lr}]\n"))
	rep := h.reconcile()
	if rep.Executed != 0 || rep.Recovered != 0 || rep.Done != 6 || len(rep.Commits) != 1 {
		t.Fatalf("report %+v, want 6 runs done, none run, and one commit redrawing the plots", rep)
	}
	clone = h.Clone()
	readme = readFile(t, clone, "results/train/README.md")
	if !strings.Contains(readme, "![acc against lr](plot.svg)\n") || strings.Contains(readme, "plot-2.svg") {
		t.Errorf("README not redrawn:\n%s", readme)
	}
	assertAxes(t, readFile(t, clone, "results/train/plot.svg"), "lr (log scale)", "acc")
	if _, err := os.Stat(filepath.Join(clone, "results/train/plot-2.svg")); err == nil {
		t.Errorf("the plot no longer chosen is still committed")
	}
	if n := len(runFolders(t, clone, "train")); n != 6 {
		t.Errorf("%d run folders after the redraw, want 6", n)
	}
	if rep := h.reconcile(); !rep.NothingToDo() {
		t.Errorf("reconcile of the redraw commit did something: %+v", rep)
	}
}

func readFile(t *testing.T, dir, name string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, filepath.FromSlash(name)))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

var (
	svgXAxis = regexp.MustCompile(`<text x="[0-9.]+" y="[0-9.]+" text-anchor="middle" fill="#24292f">([^<]*)</text>`)
	svgYAxis = regexp.MustCompile(`<text transform="translate\(18 [0-9.]+\) rotate\(-90\)" text-anchor="middle" fill="#24292f">([^<]*)</text>`)
)

// assertAxes checks a plot's axis titles.
func assertAxes(t *testing.T, svg, x, y string) {
	t.Helper()
	gotX, gotY := "", ""
	if m := svgXAxis.FindStringSubmatch(svg); m != nil {
		gotX = m[1]
	}
	if m := svgYAxis.FindStringSubmatch(svg); m != nil {
		gotY = m[1]
	}
	if gotX != x || gotY != y {
		t.Errorf("plot axes x %q, y %q; want x %q, y %q", gotX, gotY, x, y)
	}
}
