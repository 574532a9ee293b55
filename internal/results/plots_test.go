package results

import (
	"maps"
	"regexp"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/expsync/expsync/tree"
)

var sortStrings = cmpopts.SortSlices(func(a, b string) bool { return a < b })

func firstPlot(t *testing.T, page ExperimentPage) []byte {
	t.Helper()
	if len(page.Plots) == 0 {
		t.Fatal("no plot")
	}
	return page.Plots[0].SVG
}

var (
	xAxisLabel = regexp.MustCompile(`<text x="[0-9.]+" y="[0-9.]+" text-anchor="middle" fill="#24292f">([^<]*)</text>`)
	yAxisLabel = regexp.MustCompile(`<text transform="translate\(18 [0-9.]+\) rotate\(-90\)" text-anchor="middle" fill="#24292f">([^<]*)</text>`)
)

// axisLabels reads the x and y axis titles of a plot.
func axisLabels(svg []byte) (x, y string) {
	if m := xAxisLabel.FindSubmatch(svg); m != nil {
		x = string(m[1])
	}
	if m := yAxisLabel.FindSubmatch(svg); m != nil {
		y = string(m[1])
	}
	return x, y
}

// TestChosenPlots: each chosen plot is drawn into its own file with the
// metric on y and the parameter on x; one whose metric no run reported is
// a note naming what the runs did report, and keeps the later plots'
// files where they are.
func TestChosenPlots(t *testing.T) {
	page := RenderExperiment("pi", sweepRuns(), []PlotChoice{
		{X: "seed", Y: "estimate"}, {X: "samples", Y: "los"}, {X: "samples", Y: "abs_error"},
	})
	type drawn struct{ File, X, Y string }
	var got []drawn
	for _, p := range page.Plots {
		x, y := axisLabels(p.SVG)
		got = append(got, drawn{p.File, x, y})
	}
	want := []drawn{{"plot.svg", "seed", "estimate"}, {"plot-3.svg", "samples (log scale)", "abs_error"}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("plots (-want +got):\n%s", diff)
	}
	readme := string(page.Readme)
	for _, line := range []string{
		"![estimate against seed](plot.svg)",
		"> Plot of `los` against `samples` not drawn: no run reported it; the runs reported `abs_error`, `estimate` (check spec.plots against the metrics file's keys).",
		"![abs_error against samples](plot-3.svg)",
	} {
		if !strings.Contains(readme, line+"\n") {
			t.Errorf("README lacks %q:\n%s", line, readme)
		}
	}
	if strings.Contains(readme, "plot-2.svg") {
		t.Errorf("README links the plot it did not draw:\n%s", readme)
	}
	// A choice of nothing keeps today's default plot, byte for byte.
	def := RenderExperiment("pi", sweepRuns(), nil)
	defaultX, defaultY, _ := DefaultPlot(sweepRuns(), PlotChoice{})
	same := RenderExperiment("pi", sweepRuns(), []PlotChoice{{X: defaultX, Y: defaultY}})
	marker := PlotsMarker([]PlotChoice{{X: defaultX, Y: defaultY}}) + "\n\n"
	if !strings.Contains(string(same.Readme), marker) || strings.Contains(string(def.Readme), "expsync:plots") {
		t.Errorf("only the README of chosen plots records them:\n%s", same.Readme)
	}
	same.Readme = []byte(strings.Replace(string(same.Readme), marker, "", 1))
	if diff := cmp.Diff(def, same); diff != "" {
		t.Errorf("choosing the default plot differs from choosing none (-none +chosen):\n%s", diff)
	}
}

// TestPlotsChangedAndRedraw: a README records the plots it was drawn
// with, so a spec choosing others is noticed without rendering, and Redraw
// regenerates the summaries of those experiments alone.
func TestPlotsChangedAndRedraw(t *testing.T) {
	head := tree.NewMemory()
	for _, seed := range []int{1, 2} {
		writeAll(t, head, folderOf(t, aRun("pi", map[string]any{"seed": seed}).record(), `{"err": 1, "acc": 2}`, `{"sig":"ok"}`))
	}
	writeAll(t, head, folderOf(t, aRun("other", map[string]any{"n": 1}).record(), `{"x": 1}`, `{"sig":"ok"}`))
	verify := func(tree.Reader, string, string) error { return nil }
	byErr := []PlotChoice{{X: "seed", Y: "err"}}
	hostile := []PlotChoice{{X: "seed", Y: "--> <script>"}}
	opts := MergeOptions{Verify: verify, Plots: map[string][]PlotChoice{"pi": byErr}}
	changes, err := Layout{}.Redraw(head, []string{"pi", "gone"}, opts)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"results/README.md=true", "results/pi/README.md=true", "results/pi/plot.svg=true"}, keys(changes), sortStrings); diff != "" {
		t.Errorf("Redraw wrote (-want +got):\n%s", diff)
	}
	for p, data := range changes {
		if err := head.Write(p, data, tree.ModeFile); err != nil {
			t.Fatal(err)
		}
	}
	if x, y := axisLabels(changes["results/pi/plot.svg"]); x != "seed" || y != "err" {
		t.Errorf("redrawn plot axes %q, %q", x, y)
	}
	for _, tc := range []struct {
		name       string
		experiment string
		choices    []PlotChoice
		want       bool
	}{
		{"the same plots", "pi", byErr, false},
		{"another metric", "pi", []PlotChoice{{X: "seed", Y: "acc"}}, true},
		{"one more plot", "pi", append(byErr, PlotChoice{X: "seed", Y: "acc"}), true},
		{"back to the default", "pi", nil, true},
		{"a name that would end an HTML comment", "pi", hostile, true},
		{"no README yet", "other", byErr, false},
		{"no results folder", "gone", byErr, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Layout{}.PlotsChanged(head, tc.experiment, tc.choices)
			if err != nil || got != tc.want {
				t.Errorf("PlotsChanged = %v, %v; want %v", got, err, tc.want)
			}
		})
	}
	if m := PlotsMarker(hostile); strings.Count(m, "-->") != 1 || !strings.HasSuffix(m, " -->") {
		t.Errorf("marker %q ends its comment early", m)
	}
}

// TestChosenPlotNotes: a chosen plot with nothing to draw says why in one
// line, instead of an empty or broken SVG.
func TestChosenPlotNotes(t *testing.T) {
	ok := func(x any, m map[string]float64) Run { return aRun("e", map[string]any{"x": x}).run(m) }
	failed := func(x any, m map[string]float64) Run { return aRun("e", map[string]any{"x": x}).failed(1).run(m) }
	text := ok(1, nil)
	text.MetricText = map[string]string{"loss": `"n/a"`}
	many := map[string]float64{}
	for _, m := range strings.Fields("a b c d e f g h i j") {
		many[m] = 1
	}
	for _, tc := range []struct {
		name string
		runs []Run
		want string
	}{
		{"no runs", nil, "no runs yet"},
		{"no metrics at all", []Run{ok(1, nil), ok(2, nil)}, "no run reported it; the runs reported no metrics"},
		{"only other metrics, listed briefly", []Run{ok(1, many)}, "no run reported it; the runs reported `a`, `b`, `c`, `d`, `e`, `f`, `g`, `h` and 2 more (check spec.plots against the metrics file's keys)"},
		{"only failed runs reported it", []Run{failed(1, map[string]float64{"loss": 1}), ok(2, map[string]float64{"acc": 1})}, "only failed runs reported it"},
		{"reported as text", []Run{text}, "no run reported it as a finite number"},
		{"x is not a number in the runs", []Run{ok("a", map[string]float64{"loss": 1}), ok("b", map[string]float64{"loss": 2})}, "no run that reported it has a numeric `x`"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			page := RenderExperiment("e", tc.runs, []PlotChoice{{X: "x", Y: "loss"}})
			if len(page.Plots) != 0 {
				t.Errorf("drew %d plots", len(page.Plots))
			}
			want := "> Plot of `loss` against `x` not drawn: " + tc.want + ".\n"
			if !strings.Contains(string(page.Readme), want) {
				t.Errorf("README lacks %q:\n%s", want, page.Readme)
			}
		})
	}
	// One succeeded point is enough to draw: a sweep in progress shows it.
	page := RenderExperiment("e", []Run{ok(1, map[string]float64{"loss": 0.5}), failed(2, nil)}, []PlotChoice{{X: "x", Y: "loss"}})
	if x, y := axisLabels(firstPlot(t, page)); x != "x" || y != "loss" {
		t.Errorf("axis labels %q, %q; want x, loss", x, y)
	}
}

func TestIsPlotFile(t *testing.T) {
	for i := range 12 {
		if name := PlotFileName(i); !IsPlotFile(name) {
			t.Errorf("IsPlotFile(%q) = false", name)
		}
	}
	for _, name := range []string{"plot-1.svg", "plot-02.svg", "plot-.svg", "plot-2.svg.bak", "plot-x.svg", "myplot.svg", "plot-+3.svg", "README.md"} {
		if IsPlotFile(name) {
			t.Errorf("IsPlotFile(%q) = true", name)
		}
	}
}

// TestMergeRemovesPlotsNoLongerChosen: plots the new README does not link
// are deleted from the results folder; other files stay.
func TestMergeRemovesPlotsNoLongerChosen(t *testing.T) {
	head := tree.NewMemory()
	first := aRun("pi", map[string]any{"seed": 1}).record()
	writeAll(t, head, folderOf(t, first, `{"err": 1}`, `{"sig":"ok"}`))
	writeAll(t, head, map[string][]byte{
		"results/pi/plot.svg": []byte("<svg/>"), "results/pi/plot-2.svg": []byte("<svg/>"), "results/pi/plot-3.svg": []byte("<svg/>"),
		"results/pi/plot-02.svg": []byte("mine"), "results/pi/notes.svg": []byte("mine"),
	})
	batch := folderOf(t, aRun("pi", map[string]any{"seed": 2}).record(), `{"err": 2}`, `{"sig":"ok"}`)
	verify := func(tree.Reader, string, string) error { return nil }
	for _, tc := range []struct {
		name    string
		plots   []PlotChoice
		written []string
		deleted []string
	}{
		{"two chosen, the second not drawable", []PlotChoice{{X: "seed", Y: "err"}, {X: "seed", Y: "nope"}}, []string{"plot.svg"}, []string{"plot-2.svg", "plot-3.svg"}},
		{"the second chosen only", []PlotChoice{{X: "seed", Y: "nope"}, {X: "seed", Y: "err"}}, []string{"plot-2.svg"}, []string{"plot-3.svg", "plot.svg"}},
		{"none chosen: the default", nil, []string{"plot.svg"}, []string{"plot-2.svg", "plot-3.svg"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			changes, _, err := Layout{}.Merge(head, maps.Clone(batch), MergeOptions{Verify: verify, Plots: map[string][]PlotChoice{"pi": tc.plots}})
			if err != nil {
				t.Fatal(err)
			}
			var written, deleted []string
			for p, data := range changes {
				name, ok := strings.CutPrefix(p, "results/pi/")
				if !ok || strings.Contains(name, "/") || !strings.HasSuffix(name, ".svg") {
					continue
				}
				if data == nil {
					deleted = append(deleted, name)
				} else {
					written = append(written, name)
				}
			}
			if diff := cmp.Diff(tc.written, written, sortStrings); diff != "" {
				t.Errorf("written (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.deleted, deleted, sortStrings); diff != "" {
				t.Errorf("deleted (-want +got):\n%s", diff)
			}
		})
	}
}
