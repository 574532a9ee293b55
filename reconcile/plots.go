package reconcile

import (
	"context"
	"fmt"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
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

// redrawPlots commits fresh summaries for the experiments whose README was
// drawn with other plots than their spec now chooses, when this reconcile
// commits no run of theirs (a batch redraws those anyway). Plots are not
// part of any run's identity, so a commit that only edits spec.plots runs
// nothing; without this its README would keep the old plots until the
// experiment's next run.
func (r *Reconciler) redrawPlots(ctx context.Context, t Target, layout results.Layout, runs []render.Run, work workList, rep *Report) error {
	if t.Pusher == nil || ctx.Err() != nil {
		return nil
	}
	busy := map[string]bool{}
	for _, rec := range work.recover {
		busy[rec.run.Experiment] = true
	}
	for _, run := range work.execute {
		busy[run.Experiment] = true
	}
	choices := plotChoices(runs)
	var stale []string
	seen := map[string]bool{}
	for _, run := range runs {
		exp := run.Experiment
		if seen[exp] || busy[exp] {
			continue
		}
		seen[exp] = true
		changed, err := layout.PlotsChanged(t.resultsTree(), exp, choices[exp])
		if err != nil {
			return err
		}
		if changed {
			stale = append(stale, exp)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	msg := fmt.Sprintf("expsync: redraw the plots of %s for %s\n\nspec.plots changed; no run did.\n\nExpsync-Source-Commit: %s\n",
		strings.Join(stale, ", "), contract.ShortID(t.Commit), t.Commit)
	known := work.known
	commit, err := t.Pusher.CommitBack(ctx, msg, map[string][]byte{}, func(head tree.Reader, _ map[string][]byte) (map[string][]byte, error) {
		return layout.Redraw(head, stale, results.MergeOptions{Plots: choices, Verify: r.summaryCheck,
			Known: func(dir string) (results.Run, bool) { run, ok := known[dir]; return run, ok }})
	})
	if err != nil {
		return fmt.Errorf("commit the redrawn plots of %s: %w", strings.Join(stale, ", "), err)
	}
	if commit != "" {
		rep.Commits = append(rep.Commits, commit)
	}
	return nil
}
