package main

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/reproduce"
)

// reproduceJSON is one run in -o json.
type reproduceJSON struct {
	Path         string               `json:"path"`
	RunID        string               `json:"runID,omitempty"`
	Experiment   string               `json:"experiment,omitempty"`
	OK           bool                 `json:"ok"`
	Verdict      string               `json:"verdict"`
	Refused      string               `json:"refused,omitempty"`
	Problems     []reproduce.Problem  `json:"problems,omitempty"`
	Failed       string               `json:"failed,omitempty"`
	Reproduction *attest.Reproduction `json:"reproduction,omitempty"`
	Lines        map[string]string    `json:"lines,omitempty"`
	Statement    string               `json:"statement,omitempty"`
}

// verdictOf names an outcome in one word: the reproduction's verdict, or
// why there is none.
func verdictOf(o *reproduce.Outcome) string {
	switch {
	case o.Refused != nil:
		return "refused"
	case len(o.Problems) > 0:
		return "cannot-reproduce"
	case o.Failed != "":
		return "failed"
	case o.Reproduction != nil:
		return o.Reproduction.Verdict
	}
	return "unknown"
}

func (o *reproduceOptions) print(w io.Writer, out []reproduceResult) error {
	if o.Output == "json" {
		list := make([]reproduceJSON, len(out))
		for i, r := range out {
			j := reproduceJSON{Path: r.Path, RunID: r.RunID, Experiment: r.Experiment, OK: r.OK(), Verdict: verdictOf(r.Outcome),
				Problems: r.Problems, Failed: r.Failed, Reproduction: r.Reproduction, Statement: r.Statement}
			if r.Refused != nil {
				j.Refused = r.Refused.Error()
			}
			if len(r.Lines) > 0 {
				j.Lines = r.Lines
			}
			list[i] = j
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"results": list})
	}
	counts := map[string]int{}
	for _, r := range out {
		counts[verdictOf(r.Outcome)]++
		printReproduction(w, r)
	}
	fmt.Fprintf(w, "%d identical, %d reproduced within tolerances, %d differ, %d not reproduced\n",
		counts[attest.VerdictIdentical], counts[attest.VerdictReproduced], counts[attest.VerdictDiffers],
		len(out)-counts[attest.VerdictIdentical]-counts[attest.VerdictReproduced]-counts[attest.VerdictDiffers])
	return nil
}

// printReproduction prints one run: its verdict, then the exit status,
// every output and every metric side by side.
func printReproduction(w io.Writer, r reproduceResult) {
	fmt.Fprintf(w, "run %s %s (%s)\n", cmp.Or(contract.ShortID(r.RunID), "-"), r.Experiment, r.Path)
	switch {
	case r.Refused != nil:
		fmt.Fprintf(w, "  REFUSED, nothing executed: %s\n\n", verifyDetailLine(r.Refused.Error()))
		return
	case len(r.Problems) > 0:
		fmt.Fprintln(w, "  CANNOT BE REPRODUCED HERE, nothing executed:")
		for _, p := range r.Problems {
			fmt.Fprintf(w, "    %s\n", p)
		}
		fmt.Fprintln(w)
		return
	case r.Failed != "":
		fmt.Fprintf(w, "  NO VERDICT: the reproduction ended with %s\n\n", firstLine(r.Failed))
		return
	}
	rep := r.Reproduction
	fmt.Fprintf(w, "  verdict: %s\n", strings.ToUpper(rep.Verdict))
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "  exit status\t%s\t%s %d\t%s %d\n", rep.Status, rep.Original.Status, rep.Original.ExitCode, rep.Reproduced.Status, rep.Reproduced.ExitCode)
	if len(rep.Outputs) > 0 {
		fmt.Fprintln(tw, "  OUTPUT\tVERDICT\tATTESTED\tREPRODUCED\tFIRST DIFFERENCE")
	}
	for _, oc := range rep.Outputs {
		verdict := oc.Verdict
		if !oc.Required && oc.Verdict == attest.ItemIdentical {
			verdict += " (may differ)"
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", oc.Path, verdict, digestText(oc.Attested), digestText(oc.Reproduced), differenceText(oc, r.Lines[oc.Path]))
	}
	if len(rep.Metrics) > 0 {
		fmt.Fprintln(tw, "  METRIC\tVERDICT\tATTESTED\tREPRODUCED\tTOLERANCE")
	}
	for _, mc := range rep.Metrics {
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\n", mc.Name, mc.Verdict, numberText(mc.Attested), numberText(mc.Reproduced), toleranceText(mc.Tolerance))
	}
	tw.Flush()
	for _, line := range strings.SplitAfter(table.String(), "\n") {
		if line != "" {
			fmt.Fprintln(w, strings.TrimRight(line, " \n"))
		}
	}
	fmt.Fprintf(w, "  log: %s (never judged)\n", rep.Log)
	fmt.Fprintf(w, "  tolerances: %s\n", tolerancesText(rep.Tolerances))
	if r.Statement != "" {
		fmt.Fprintf(w, "  statement: %s\n", r.Statement)
	}
	fmt.Fprintln(w)
}

func digestText(d *attest.FileDigest) string {
	if d == nil {
		return "-"
	}
	return fmt.Sprintf("%s sha256:%s", sizeText(d.Size), d.SHA256[:12])
}

func sizeText(n int64) string {
	switch {
	case n < 1<<10:
		return fmt.Sprintf("%d B", n)
	case n < 1<<20:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	case n < 1<<30:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
}

func differenceText(oc attest.OutputComparison, line string) string {
	if oc.FirstDifference == nil {
		return line
	}
	s := "byte " + strconv.FormatInt(*oc.FirstDifference, 10)
	if line != "" {
		s += ", " + line
	}
	return s
}

func numberText(f *float64) string {
	if f == nil {
		return "-"
	}
	return strconv.FormatFloat(*f, 'g', -1, 64)
}

func toleranceText(t *attest.MetricTolerance) string {
	if t == nil {
		return "equal"
	}
	var parts []string
	if t.Abs > 0 {
		parts = append(parts, "abs "+strconv.FormatFloat(t.Abs, 'g', -1, 64))
	}
	if t.Rel > 0 {
		parts = append(parts, "rel "+strconv.FormatFloat(t.Rel, 'g', -1, 64))
	}
	return strings.Join(parts, ", ")
}

func tolerancesText(t attest.Tolerances) string {
	src := fmt.Sprintf("%s@%s", t.SpecPath, cmp.Or(contract.ShortID(t.SpecBlob), "-"))
	if t.Note != "" {
		return src + ": " + t.Note
	}
	exact := "every output exact"
	if t.Exact != nil {
		exact = "exact: " + strings.Join(t.Exact, ", ")
		if len(t.Exact) == 0 {
			exact = "no output must be exact"
		}
	}
	metrics := "every metric equal"
	if len(t.Metrics) > 0 {
		metrics = fmt.Sprintf("%d metric tolerance(s)", len(t.Metrics))
	}
	return fmt.Sprintf("from %s (%s; %s)", src, exact, metrics)
}

// reproduceProgress prints each run's steps on stderr.
type reproduceProgress struct {
	w     io.Writer
	on    bool
	total int
	n     int
	seen  map[string]bool
}

func newReproduceProgress(mode string, w io.Writer, total int) *reproduceProgress {
	// One line per step, on a terminal too: a reproduction has few steps,
	// and a long one reports while it runs.
	return &reproduceProgress{w: w, on: mode != "none", total: total, seen: map[string]bool{}}
}

func (p *reproduceProgress) event(e reproduce.Event) {
	if !p.on {
		return
	}
	if !p.seen[e.RunID] {
		p.seen[e.RunID] = true
		p.n++
	}
	prefix := fmt.Sprintf("[%d/%d] %s", p.n, p.total, cmp.Or(contract.ShortID(e.RunID), "-"))
	switch e.Kind {
	case reproduce.EventRunning:
		fmt.Fprintf(p.w, "%s: still running after %s\n", prefix, e.Elapsed)
	default:
		fmt.Fprintf(p.w, "%s: %s\n", prefix, e.Message)
	}
}
