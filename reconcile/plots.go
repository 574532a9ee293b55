package reconcile

import (
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/results"
)

// plotChoices maps each planned experiment that chooses plots (spec.plots)
// to its choices, for the README summaries; the others get the default.
func plotChoices(runs []render.Run) map[string][]results.PlotChoice {
	out := map[string][]results.PlotChoice{}
	for _, run := range runs {
		if _, done := out[run.Experiment]; done || run.Spec == nil || len(run.Spec.Plots) == 0 {
			continue
		}
		choices := make([]results.PlotChoice, len(run.Spec.Plots))
		for i, p := range run.Spec.Plots {
			choices[i] = results.PlotChoice{X: p.Against, Y: p.Metric}
		}
		out[run.Experiment] = choices
	}
	return out
}
