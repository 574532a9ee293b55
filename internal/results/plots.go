package results

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"path"
	"strconv"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// PlotImage is one SVG of an experiment's README, by its file name in the
// experiment's folder.
type PlotImage struct {
	File string
	SVG  []byte
}

// PlotFileName is the file of the i-th chosen plot (from 0): PlotFile for
// the first, "plot-<i+1>.svg" after it. A plot keeps its file when an
// earlier one has nothing to draw, so links to it stay stable.
func PlotFileName(i int) string {
	if i == 0 {
		return PlotFile
	}
	return "plot-" + strconv.Itoa(i+1) + ".svg"
}

// IsPlotFile tells the names PlotFileName makes, so a results folder's
// plots that are no longer chosen can be removed.
func IsPlotFile(name string) bool {
	if name == PlotFile {
		return true
	}
	n, ok := strings.CutPrefix(name, "plot-")
	if !ok {
		return false
	}
	n, ok = strings.CutSuffix(n, ".svg")
	i, err := strconv.Atoi(n)
	return ok && err == nil && i >= 2 && PlotFileName(i-1) == name
}

// writePlots draws the chosen plots (or the default one when none is
// chosen) and writes their links, or for a chosen plot with nothing to draw
// a short note saying why, into the README.
func writePlots(b *bytes.Buffer, experiment string, runs []Run, choices []PlotChoice) []PlotImage {
	if len(choices) == 0 {
		x, y, ok := DefaultPlot(runs, PlotChoice{})
		if !ok {
			return nil
		}
		fmt.Fprintf(b, "![%s against %s](%s)\n\n", mdEscape(y), mdEscape(x), PlotFile)
		return []PlotImage{{File: PlotFile, SVG: PlotSVG(experiment, runs, x, y)}}
	}
	var images []PlotImage
	for i, c := range choices {
		if c.X == "" || c.Y == "" {
			// Not from a loaded spec (which always names both): the
			// default fills in what is missing.
			if x, y, ok := DefaultPlot(runs, c); ok {
				c.X = orElse(c.X, x)
				c.Y = orElse(c.Y, y)
			}
		}
		if why := whyNoPlot(runs, c); why != "" {
			fmt.Fprintf(b, "> Plot of `%s` against `%s` not drawn: %s.\n\n", mdCode(c.Y), mdCode(c.X), why)
			continue
		}
		file := PlotFileName(i)
		fmt.Fprintf(b, "![%s against %s](%s)\n\n", mdEscape(c.Y), mdEscape(c.X), file)
		images = append(images, PlotImage{File: file, SVG: PlotSVG(experiment, runs, c.X, c.Y)})
	}
	return images
}

// orElse returns a unless it is empty, else b.
func orElse(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// maxListedMetrics bounds the metric names a note lists.
const maxListedMetrics = 8

// whyNoPlot says, in a few words, why metric c.Y against parameter c.X has
// no point to draw; "" when it has one.
func whyNoPlot(runs []Run, c PlotChoice) string {
	if c.X == "" || c.Y == "" {
		return "no numeric metric and parameter to plot yet"
	}
	var numeric, text, failedOnly, numericX bool
	for _, r := range runs {
		v, isNum := r.Metrics[c.Y]
		_, isText := r.MetricText[c.Y]
		text = text || isText
		if !isNum || math.IsNaN(v) || math.IsInf(v, 0) {
			continue
		}
		if r.Record.Status != contract.Succeeded {
			failedOnly = true
			continue
		}
		numeric = true
		if _, ok := toFloat(r.Record.Params[c.X]); ok {
			numericX = true
		}
	}
	switch {
	case numeric && numericX:
		return ""
	case numeric:
		return fmt.Sprintf("no run that reported it has a numeric `%s`", mdCode(c.X))
	case failedOnly:
		return "only failed runs reported it"
	case text:
		return "no run reported it as a finite number"
	case len(runs) == 0:
		return "no runs yet"
	}
	reported := metricNames(runs)
	if len(reported) == 0 {
		return "no run reported it; the runs reported no metrics"
	}
	listed := make([]string, 0, min(len(reported), maxListedMetrics))
	for _, m := range reported[:min(len(reported), maxListedMetrics)] {
		listed = append(listed, "`"+mdCode(clip(m, 40))+"`")
	}
	more := ""
	if len(reported) > maxListedMetrics {
		more = fmt.Sprintf(" and %d more", len(reported)-maxListedMetrics)
	}
	return fmt.Sprintf("no run reported it; the runs reported %s%s (check spec.plots against the metrics file's keys)", strings.Join(listed, ", "), more)
}

// plotsMarkerPrefix starts the README line that records the chosen plots,
// so a reconcile can tell a README drawn with other plots than the spec
// now chooses without rendering it.
const plotsMarkerPrefix = "<!-- expsync:plots "

// PlotsMarker is the README line recording choices: "" for none (the
// default plot). JSON escapes '<' and '>', so no name can end the comment.
func PlotsMarker(choices []PlotChoice) string {
	if len(choices) == 0 {
		return ""
	}
	data, _ := json.Marshal(choices)
	return plotsMarkerPrefix + string(data) + " -->"
}

// PlotsChanged tells whether the README of experiment in r was drawn with
// other plots than choices. An experiment without a README has nothing
// drawn: false.
func (l Layout) PlotsChanged(r tree.Reader, experiment string, choices []PlotChoice) (bool, error) {
	// The marker is in the README's head, before the table (which a
	// README of 10,000 runs makes longer than any fixed read limit).
	head, err := readmeHead(r, path.Join(l.ExperimentDir(experiment), ReadmeFile))
	if errors.Is(err, tree.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("read results README of %s: %w", experiment, err)
	}
	drawn := ""
	for line := range bytes.Lines(head) {
		if bytes.HasPrefix(line, []byte(plotsMarkerPrefix)) {
			drawn = strings.TrimSpace(string(line))
			break
		}
	}
	return drawn != PlotsMarker(choices), nil
}
