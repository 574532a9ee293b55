package results

import (
	"bytes"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// ReproductionsDir is the folder of a run folder holding its signed
// reproduction statements (see attest.ReproductionsDir).
const ReproductionsDir = "reproductions"

// Reproduction is one reproduction statement of a run, as the experiment's
// README lists it.
type Reproduction struct {
	// File is the statement's name in the run folder's reproductions/.
	File string
	// Verdict is identical, reproduced or differs; BuilderID who
	// reproduced it, FinishedOn when.
	Verdict, BuilderID, FinishedOn string
	// Unverified says why the statement does not count ("" when it
	// verified with a trusted key for this run).
	Unverified string
}

// reproducedCell is a run's column in the README table: the verdict of its
// latest verified reproduction and how many there are.
func reproducedCell(r Run) string {
	var verified []Reproduction
	for _, rp := range r.Reproductions {
		if rp.Unverified == "" {
			verified = append(verified, rp)
		}
	}
	if len(verified) == 0 {
		return ""
	}
	sort.Slice(verified, func(i, j int) bool { return verified[i].FinishedOn < verified[j].FinishedOn })
	last := verified[len(verified)-1]
	mark := map[string]string{"identical": "✓ identical", "reproduced": "✓ within tolerances", "differs": "✗ **differs**"}[last.Verdict]
	if mark == "" {
		mark = mdEscape(last.Verdict)
	}
	if len(verified) > 1 {
		mark += fmt.Sprintf(" (%d×)", len(verified))
	}
	return mark
}

// writeReproductions lists every reproduction statement of the runs after
// the table: verified ones with their verdict, reproducer and time, linked;
// the others apart with why they do not count.
func writeReproductions(b *bytes.Buffer, runs []Run) {
	var verified, unverified []struct {
		run *Record
		rp  Reproduction
	}
	counts := map[string]int{}
	for _, r := range runs {
		for _, rp := range r.Reproductions {
			e := struct {
				run *Record
				rp  Reproduction
			}{r.Record, rp}
			if rp.Unverified != "" {
				unverified = append(unverified, e)
				continue
			}
			verified = append(verified, e)
			counts[rp.Verdict]++
		}
	}
	if len(verified) > 0 {
		fmt.Fprintf(b, "\n## Reproductions\n\n")
		fmt.Fprintf(b, "%s of these runs executed again from their attestations alone (`expsync reproduce`, or serve's audit): %d identical, %d within the spec's tolerances, %d differ. Each signed statement is in the run folder's `reproductions/`; `expsync verify` checks it.\n\n",
			plural(len(verified), "reproduction"), counts["identical"], counts["reproduced"], counts["differs"])
		b.WriteString("| run | verdict | reproduced by | finished | statement |\n| --- | --- | --- | --- | --- |\n")
		sort.SliceStable(verified, func(i, j int) bool {
			if verified[i].run.RunID != verified[j].run.RunID {
				return verified[i].run.RunID < verified[j].run.RunID
			}
			return verified[i].rp.File < verified[j].rp.File
		})
		for _, e := range verified {
			link := path.Join(e.run.RunID, ReproductionsDir, e.rp.File)
			fmt.Fprintf(b, "| [`%s`](%s/) | %s | %s | %s | [%s](%s) |\n", contract.ShortID(e.run.RunID), e.run.RunID, mdEscape(e.rp.Verdict),
				mdEscape(e.rp.BuilderID), mdEscape(e.rp.FinishedOn), mdEscape(e.rp.File), link)
		}
	}
	if len(unverified) > 0 {
		fmt.Fprintf(b, "\n## ⚠ Unverified reproduction statements\n\n")
		fmt.Fprintf(b, "%s in run folders' `reproductions/` did not verify with a trusted key for their run: forged, copied from another run, about an edited `run.json`, or not a statement. They are not counted above.\n\n",
			plural(len(unverified), "file"))
		for _, e := range unverified {
			fmt.Fprintf(b, "- `%s/%s/%s`: %s\n", mdCode(contract.ShortID(e.run.RunID)), ReproductionsDir, mdCode(e.rp.File),
				mdEscape(clip(e.rp.Unverified, 2*maxReasonRunes)))
		}
	}
}

// inReproductions tells whether p, relative to a run folder, lies in its
// reproductions/.
func inReproductions(p string) bool { return strings.HasPrefix(p, ReproductionsDir+"/") }

// AddReproductions adds reproduction statements (keyed by repository path:
// <root>/<experiment>/<run-id>/reproductions/<name>) to the run folders of
// head and regenerates the README of every experiment that gained one, and
// the index. A statement whose run folder is not in head is left out (the
// run was replaced or removed meanwhile: the statement is about another
// folder); one already there is not written again. It returns the changes
// and the statements added.
func (l Layout) AddReproductions(head tree.Reader, statements map[string][]byte, opts MergeOptions) (Changes, []string, error) {
	changes := Changes{}
	var added []string
	affected := map[string]bool{}
	paths := make([]string, 0, len(statements))
	for p := range statements {
		paths = append(paths, p)
	}
	sort.Strings(paths)
	for _, p := range paths {
		exp, runDir, err := l.reproductionPath(p)
		if err != nil {
			return nil, nil, err
		}
		if e, err := head.Stat(path.Join(runDir, RunFile)); err != nil || e.IsDir() {
			continue
		}
		if _, err := head.Stat(p); err == nil {
			continue
		} else if !errors.Is(err, tree.ErrNotExist) {
			return nil, nil, fmt.Errorf("add reproduction %s: %w", p, err)
		}
		changes[p] = statements[p]
		added = append(added, p)
		affected[exp] = true
	}
	if len(added) == 0 {
		return changes, nil, nil
	}
	// The README keeps the plots it was drawn with (the experiment's spec
	// chose them; statements change no run).
	plots := map[string][]PlotChoice{}
	for exp, p := range opts.Plots {
		plots[exp] = p
	}
	for exp := range affected {
		if _, ok := plots[exp]; !ok {
			if drawn, ok, err := l.drawnPlots(head, exp); err == nil && ok {
				plots[exp] = drawn
			}
		}
	}
	opts.Plots = plots
	merged := newOverlay(head, changes)
	pages := Changes{}
	if err := l.summaries(head, merged, sortedKeys(affected), opts, pages); err != nil {
		return nil, nil, err
	}
	for p, data := range pages {
		changes[p] = data
	}
	return changes, added, nil
}

// reproductionPath checks that p is <root>/<experiment>/<run-id>/reproductions/<name>.
func (l Layout) reproductionPath(p string) (experiment, runDir string, err error) {
	rest, ok := strings.CutPrefix(p, l.root()+"/")
	parts := strings.Split(rest, "/")
	if !ok || len(parts) != 4 || parts[2] != ReproductionsDir || !contract.IsRunID(parts[1]) || checkRelPath(p) != nil {
		return "", "", fmt.Errorf("add reproduction: %s is not %s/<experiment>/<run-id>/%s/<name>", p, l.root(), ReproductionsDir)
	}
	return parts[0], path.Join(l.root(), parts[0], parts[1]), nil
}
