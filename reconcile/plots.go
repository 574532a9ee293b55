package reconcile

import (
	"context"
	"fmt"

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

// refreshSummaries brings the results summaries of the target's branch up
// to date (results.Layout.Refresh): every experiment's README and plots
// and the index, regenerated from the run folders the branch holds now. A
// folder pushed by someone else since the last results commit is listed
// as unverified at once, a README edited by hand or drawn with other plots
// than the spec now chooses is redrawn, in one commit; with nothing stale
// nothing is committed (and nothing fetched when this reconcile committed
// nothing: the snapshot says so). Plots are not part of any run's
// identity, so a commit that only edits spec.plots runs nothing and is
// redrawn here.
func (r *Reconciler) refreshSummaries(ctx context.Context, t Target, layout results.Layout, runs []render.Run, committed bool, rep *Report) error {
	if t.Pusher == nil || ctx.Err() != nil {
		return nil
	}
	if _, _, err := r.keys(); err != nil {
		return nil // nothing can be verified: every folder would look forged
	}
	choices := plotChoices(runs)
	// Folders are verified once per tree ID (verifyFolderOnce): those the
	// plan checked cost a lookup.
	opts := results.MergeOptions{Verify: r.summaryCheck, Reproductions: r.reproductions}
	if !committed {
		stale, err := layout.Refresh(t.resultsTree(), choices, opts)
		if err != nil || len(stale) == 0 {
			return err
		}
	}
	msg := fmt.Sprintf("expsync: bring the results summaries up to date for %s\n\nRun folders, plots or READMEs changed outside expsync; no run did.\n\nExpsync-Source-Commit: %s\n",
		contract.ShortID(t.Commit), t.Commit)
	commit, err := t.Pusher.CommitBack(ctx, msg, map[string][]byte{}, func(head tree.Reader, _ map[string][]byte) (map[string][]byte, error) {
		changes, err := layout.Refresh(head, choices, opts)
		return changes, err
	})
	if err != nil {
		return fmt.Errorf("commit the results summaries: %w", err)
	}
	if commit != "" {
		rep.Commits = append(rep.Commits, commit)
	}
	return nil
}
