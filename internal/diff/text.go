package diff

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/expsync/expsync/contract"
)

// Text writes the report for a terminal: one block per experiment, its
// runs one per line with every metric on both sides. Text from the
// repository is stripped of control characters (no terminal escapes).
func Text(out io.Writer, r *Report) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "base %s → head %s\n", sideText(r.Base), sideText(r.Head))
	fmt.Fprintf(tw, "%s\n", upper(countsLine(r.Totals)))
	for _, e := range r.Experiments {
		fmt.Fprintf(tw, "\n%s: %s", plain(e.Name), countsLine(e.Counts))
		if e.Counts.Stale > 0 {
			fmt.Fprintf(tw, " (%s of older code left out)", plural(e.Counts.Stale, "result"))
		}
		fmt.Fprintln(tw)
		for _, p := range e.Changed {
			mark := "CHANGED"
			if p.Regression {
				mark = "REGRESSED"
			} else if p.Fixed {
				mark = "FIXED"
			}
			st := status(p.Head)
			if p.StatusChange != "" {
				st = orPending(p.Base.Status) + " → " + status(p.Head)
			}
			fmt.Fprintf(tw, "  %s\t%s\t%s → %s\t%s\n", mark, plain(point(p.Head)), contract.ShortID(p.Base.ID), contract.ShortID(p.Head.ID), plain(st))
			for _, m := range p.Metrics {
				fmt.Fprintf(tw, "  \t  %s\t%s\t\n", plain(m.Name), plain(change(m)))
			}
		}
		for _, part := range []struct {
			mark string
			runs []Run
		}{{"ADDED", e.Added}, {"REMOVED", e.Removed}, {"PENDING", e.Pending}} {
			for _, r := range part.runs {
				fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\n", part.mark, plain(point(r)), contract.ShortID(r.ID), plain(status(r)))
				for _, m := range e.Metrics {
					if v := single(r, m); v != "" {
						fmt.Fprintf(tw, "  \t  %s\t%s\t\n", plain(m), plain(v))
					}
				}
			}
		}
	}
	if len(r.Unverified) > 0 {
		fmt.Fprintf(tw, "\nunverified folders (not counted):\n")
		for _, u := range r.Unverified {
			fmt.Fprintf(tw, "  %s\t%s\t%s\n", u.Side, plain(u.Dir), plain(u.Reason))
		}
	}
	return tw.Flush()
}

func sideText(s SideInfo) string {
	out := plain(s.Label)
	if s.Commit != "" {
		out += " (" + shortCommit(s.Commit) + ")"
	}
	if s.PlanError != "" {
		out += " [not planned: " + plain(s.PlanError) + "]"
	}
	return out
}

// JSON writes the report as indented JSON.
func JSON(out io.Writer, r *Report) error {
	enc := json.NewEncoder(out)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}
