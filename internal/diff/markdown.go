package diff

import (
	"bytes"
	"fmt"
	"path"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
)

// MarkdownOptions tune Markdown.
type MarkdownOptions struct {
	// Title is the heading ("" : "expsync diff").
	Title string
	// Intro is trusted Markdown written under the heading (a status line,
	// links): the caller's own text, not escaped.
	Intro string
	// Link returns the URL of a path in the head's results (an
	// experiment's README or plot); nil or "" writes no link.
	Link func(repoPath string) string
	// MaxRows bounds each table (0: no bound); the rows left out are
	// counted.
	MaxRows int
	// MaxBytes bounds the whole text (0: no bound): tables are cut further
	// until it fits, and the text says so and points to Full.
	MaxBytes int
	// Full is trusted Markdown saying where the whole diff is (a link, a
	// command), written when anything was cut.
	Full string
}

// Markdown renders the report as GitHub/GitLab/Gitea-flavoured Markdown:
// a summary table, the status changes, then per experiment its changed,
// added, removed and pending runs. Everything taken from the repository is
// escaped (see mdText).
func Markdown(r *Report, o MarkdownOptions) []byte {
	rows := o.MaxRows
	if longest := longestTable(r); rows <= 0 || rows > longest {
		rows = longest
	}
	if o.MaxBytes > 0 {
		// A row takes at least 20 bytes: start below what cannot fit.
		rows = min(rows, o.MaxBytes/20)
	}
	out := markdownWith(r, o, rows, true)
	for o.MaxBytes > 0 && len(out) > o.MaxBytes && rows > 0 {
		rows /= 4
		out = markdownWith(r, o, rows, true)
	}
	if o.MaxBytes > 0 && len(out) > o.MaxBytes {
		out = markdownWith(r, o, 0, false) // the summary alone
	}
	if o.MaxBytes > 0 && len(out) > o.MaxBytes {
		out = cutLines(out, o.MaxBytes, o.Full)
	}
	return out
}

// longestTable is the most rows any table of the report could have.
func longestTable(r *Report) int {
	n := max(len(r.Experiments), len(r.Unverified))
	changes := 0
	for _, e := range r.Experiments {
		n = max(n, len(e.Changed), len(e.Added), len(e.Removed), len(e.Pending))
		for _, p := range e.Changed {
			if p.StatusChange != "" {
				changes++
			}
		}
	}
	return max(n, changes)
}

type mdWriter struct {
	bytes.Buffer
	o   MarkdownOptions
	cut bool // some rows were left out
}

func markdownWith(r *Report, o MarkdownOptions, rows int, sections bool) []byte {
	w := &mdWriter{o: o}
	title := o.Title
	if title == "" {
		title = "expsync diff"
	}
	fmt.Fprintf(w, "### %s\n\n", title)
	if o.Intro != "" {
		w.WriteString(strings.TrimSpace(o.Intro) + "\n\n")
	}
	fmt.Fprintf(w, "**Base:** %s · **Head:** %s\n\n", sideMD(r.Base), sideMD(r.Head))
	if n := r.Totals.Regressions; n > 0 {
		fmt.Fprintf(w, "> [!WARNING]\n> **%s succeeded on the base and fail%s on the head.**\n\n", plural(n, "run"), map[bool]string{true: "s", false: ""}[n == 1])
	}
	w.summary(r, rows, sections)
	if sections {
		w.statusChanges(r, rows)
		for _, e := range r.Experiments {
			w.experiment(e, rows)
		}
	} else if len(r.Experiments) > 0 {
		w.cut = true
	}
	w.unverified(r, rows)
	if w.cut {
		fmt.Fprintf(w, "\n---\n*This report leaves rows out to fit.*")
		if o.Full != "" {
			w.WriteString(" " + strings.TrimSpace(o.Full))
		}
		w.WriteString("\n")
	}
	return w.Bytes()
}

func sideMD(s SideInfo) string {
	out := mdText(s.Label, maxCellRunes)
	if s.Commit != "" {
		out += " (`" + shortCommit(s.Commit) + "`)"
	}
	if s.PlanError != "" {
		out += " — its experiment files did not plan (" + mdText(s.PlanError, 2*maxCellRunes) + "): every verified result counts"
	}
	return out
}

func (w *mdWriter) summary(r *Report, rows int, sections bool) {
	if len(r.Experiments) == 0 {
		w.WriteString("No verified results and no planned runs on either side.\n\n")
		return
	}
	fmt.Fprintf(w, "%s.\n\n", upper(countsLine(r.Totals)))
	w.WriteString("| experiment | changed | added | removed | pending | unchanged | failed on head |\n")
	w.WriteString("| --- | ---: | ---: | ---: | ---: | ---: | ---: |\n")
	limit := rows
	if !sections || limit < 10 {
		limit = max(limit, 10) // the summary keeps at least a few lines
	}
	shown := 0
	for _, e := range r.Experiments {
		if shown == limit {
			break
		}
		c := e.Counts
		name := mdText(e.Name, maxCellRunes)
		if sections {
			name = "[" + name + "](#" + anchor(e.Name) + ")"
		}
		failed := fmt.Sprint(c.Failed)
		if c.Regressions > 0 {
			failed = fmt.Sprintf("**%d** (%d new)", c.Failed, c.Regressions)
		}
		fmt.Fprintf(w, "| %s | %d | %d | %d | %d | %d | %s |\n", name, c.Changed, c.Added, c.Removed, c.Pending, c.Unchanged, failed)
		shown++
	}
	w.more(len(r.Experiments)-shown, "experiment")
	w.WriteString("\n")
}

// anchor is the heading ID GitHub and Gitea give "#### diff: NAME";
// a link that misses only fails to jump.
func anchor(name string) string {
	var b strings.Builder
	for _, r := range strings.ToLower("diff: " + plain(name)) {
		switch {
		case r == ' ':
			b.WriteByte('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9':
			b.WriteRune(r)
		}
	}
	return b.String()
}

func (w *mdWriter) statusChanges(r *Report, rows int) {
	type change struct {
		exp string
		p   Pair
	}
	var all []change
	for _, e := range r.Experiments {
		for _, p := range e.Changed {
			if p.StatusChange != "" {
				all = append(all, change{e.Name, p})
			}
		}
	}
	if len(all) == 0 {
		return
	}
	w.WriteString("#### Status changes\n\n| | experiment | point | base | head |\n| --- | --- | --- | --- | --- |\n")
	for i, c := range all {
		if i == rows {
			break
		}
		mark := ""
		switch {
		case c.p.Regression:
			mark = "❌"
		case c.p.Fixed:
			mark = "✅"
		}
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s |\n", mark, mdText(c.exp, maxCellRunes), mdText(point(c.p.Head), 2*maxCellRunes),
			mdText(status(c.p.Base), maxCellRunes), emphasizeFailure(c.p.Head))
	}
	w.more(len(all)-rows, "status change")
	w.WriteString("\n")
}

func emphasizeFailure(r Run) string {
	s := mdText(status(r), maxCellRunes)
	if r.Status != "" && r.Status != string(contract.Succeeded) {
		return "**" + s + "**"
	}
	return s
}

func (w *mdWriter) experiment(e Experiment, rows int) {
	if len(e.Changed)+len(e.Added)+len(e.Removed)+len(e.Pending) == 0 && e.Counts.Unchanged == 0 {
		return
	}
	fmt.Fprintf(w, "#### diff: %s\n\n", mdText(e.Name, maxCellRunes))
	line := upper(countsLine(e.Counts)) + "."
	if e.Counts.Stale > 0 {
		line += fmt.Sprintf(" %s of older code left out.", plural(e.Counts.Stale, "result"))
	}
	if links := w.pageLinks(e); links != "" {
		line += " " + links
	}
	w.WriteString(line + "\n\n")
	if len(e.Changed) > 0 {
		w.WriteString("**Changed** (same point; new code, data or environment, or a new result):\n\n")
		w.header(e, "run (base → head)", "status")
		for i, p := range e.Changed {
			if i == rows {
				break
			}
			w.row(e, p.Head, "`"+contract.ShortID(p.Base.ID)+"` → `"+contract.ShortID(p.Head.ID)+"`", pairStatus(p), func(m string) string {
				for _, mc := range p.Metrics {
					if mc.Name == m {
						return mdText(change(mc), 2*maxCellRunes)
					}
				}
				return ""
			})
		}
		w.more(len(e.Changed)-rows, "changed run")
		w.WriteString("\n")
	}
	for _, part := range []struct {
		title string
		runs  []Run
	}{{"**Added**", e.Added}, {"**Removed**", e.Removed}, {"**Pending** (no result yet)", e.Pending}} {
		if len(part.runs) == 0 {
			continue
		}
		w.WriteString(part.title + ":\n\n")
		w.header(e, "run", "status")
		for i, r := range part.runs {
			if i == rows {
				break
			}
			w.row(e, r, "`"+contract.ShortID(r.ID)+"`", emphasizeFailure(r), func(m string) string { return mdText(single(r, m), maxCellRunes) })
		}
		w.more(len(part.runs)-rows, "run")
		w.WriteString("\n")
	}
}

func pairStatus(p Pair) string {
	if p.StatusChange == "" {
		return emphasizeFailure(p.Head)
	}
	s := mdText(orPending(p.Base.Status), maxCellRunes) + " → " + emphasizeFailure(p.Head)
	if p.Regression {
		s = "❌ " + s
	}
	return s
}

func (w *mdWriter) pageLinks(e Experiment) string {
	if w.o.Link == nil {
		return ""
	}
	var links []string
	for _, p := range e.Pages {
		u := w.o.Link(p)
		if u == "" {
			continue
		}
		name := "plot"
		if path.Base(p) == results.ReadmeFile {
			name = "results"
		} else if path.Base(p) != results.PlotFile {
			name = strings.TrimSuffix(path.Base(p), ".svg")
		}
		links = append(links, "["+name+"]("+linkDest(u)+")")
	}
	return strings.Join(links, " · ")
}

// linkDest keeps a URL inside a link's destination: the caller builds it,
// but a path may hold characters that end one.
func linkDest(u string) string {
	r := strings.NewReplacer(" ", "%20", "(", "%28", ")", "%29", "<", "%3C", ">", "%3E", "\n", "", "\r", "")
	return r.Replace(u)
}

func (w *mdWriter) header(e Experiment, runCol, statusCol string) {
	cols := []string{}
	for _, p := range e.Params {
		cols = append(cols, mdText(p, maxCellRunes))
	}
	cols = append(cols, runCol, statusCol)
	for _, m := range e.Metrics {
		cols = append(cols, mdText(m, maxCellRunes))
	}
	w.WriteString("| " + strings.Join(cols, " | ") + " |\n|" + strings.Repeat(" --- |", len(cols)) + "\n")
}

func (w *mdWriter) row(e Experiment, r Run, runCell, statusCell string, metric func(string) string) {
	cells := []string{}
	for _, p := range e.Params {
		cells = append(cells, mdText(paramValue(r, p), maxCellRunes))
	}
	if r.Repeat > 0 {
		runCell += fmt.Sprintf(" (repeat %d)", r.Repeat)
	}
	cells = append(cells, runCell, statusCell)
	for _, m := range e.Metrics {
		cells = append(cells, metric(m))
	}
	w.WriteString("| " + strings.Join(cells, " | ") + " |\n")
}

// more notes rows a table leaves out.
func (w *mdWriter) more(n int, noun string) {
	if n <= 0 {
		return
	}
	w.cut = true
	fmt.Fprintf(w, "\n*… and %s more, not shown.*\n", plural(n, noun))
}

func (w *mdWriter) unverified(r *Report, rows int) {
	if len(r.Unverified) == 0 {
		return
	}
	heads := 0
	for _, u := range r.Unverified {
		if u.Side == "head" {
			heads++
		}
	}
	fmt.Fprintf(w, "\n<details><summary>⚠ %s not counted: unverified (%d on the head)</summary>\n\n", plural(len(r.Unverified), "folder"), heads)
	w.WriteString("Unsigned, signed by an untrusted key, copied from another run or experiment, or edited after signing. They are never compared.\n\n")
	limit := max(rows, 10)
	for i, u := range r.Unverified {
		if i == limit {
			break
		}
		fmt.Fprintf(w, "- %s %s: %s\n", u.Side, mdText(u.Dir, 2*maxCellRunes), mdText(strings.TrimSuffix(u.Reason, ": attestation not verified"), 2*maxCellRunes))
	}
	w.more(len(r.Unverified)-limit, "unverified folder")
	w.WriteString("\n</details>\n")
}

func upper(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cutLines keeps whole lines of md within n bytes, with a last line saying
// so (an unclosed table or <details> ends where the text ends).
func cutLines(md []byte, n int, full string) []byte {
	note := "\n\n---\n*Cut to fit the forge's size limit.* " + strings.TrimSpace(full) + "\n"
	if len(note) >= n {
		return []byte(note[:n])
	}
	keep := md[:n-len(note)]
	if i := bytes.LastIndexByte(keep, '\n'); i >= 0 {
		keep = keep[:i]
	}
	return append(append([]byte(nil), keep...), note...)
}
