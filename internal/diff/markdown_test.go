package diff_test

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/diff"
)

func f(v float64) *float64 { return &v }

// hostile is text a pull request's author controls, made to break out of
// a Markdown table and a report: HTML, links, images, emphasis, mentions,
// a line break starting a fake row, a terminal escape.
const hostile = "[x](javascript:alert(1)) ![i](https://evil.example/i.png) <img src=x onerror=alert(1)> " +
	"@admin **bold** `code` &lt;b&gt; <!-- expsync-report:expsync -->\n| fake | row |\x1b[2J\u202e"

func hostileReport() *diff.Report {
	run := func(id, status string, v float64) diff.Run {
		return diff.Run{ID: id, Status: status, Params: map[string]any{"name": hostile, "lr": 0.1},
			Metrics: map[string]float64{"<b>m</b>": v}, MetricText: map[string]string{"note": hostile}, Reason: hostile}
	}
	e := diff.Experiment{Name: "exp<script>alert(1)</script>|x", Params: []string{"lr", "name"}, Metrics: []string{"<b>m</b>", "note"},
		Changed: []diff.Pair{{Base: run("aaaa", "Succeeded", 1), Head: run("bbbb", "Failed", 2), StatusChange: "Succeeded → Failed", Regression: true,
			Metrics: []diff.MetricChange{{Name: "<b>m</b>", Base: f(1), Head: f(2), Abs: f(1), Rel: f(1)}, {Name: "note", BaseText: hostile, HeadText: hostile + "!"}}}},
		Added:  []diff.Run{run("cccc", "Succeeded", 3)},
		Counts: diff.Counts{Changed: 1, Added: 1, Failed: 1, Regressions: 1},
		Pages:  []string{"results/exp/README.md", "results/exp/plot.svg"},
	}
	return &diff.Report{
		Base:        diff.SideInfo{Label: "main" + hostile, Commit: "0123456789abcdef"},
		Head:        diff.SideInfo{Label: "pr", PlanError: hostile},
		Experiments: []diff.Experiment{e},
		Unverified:  []diff.Unverified{{Side: "head", Dir: "results/<iframe src=x>/" + hostile, Reason: hostile}},
		Totals:      e.Counts,
	}
}

// TestMarkdownEscapesRepositoryText: nothing a pull request's author
// writes becomes HTML, a link, an image, a mention, a table cell of its
// own or a marker of expsync's comment.
func TestMarkdownEscapesRepositoryText(t *testing.T) {
	md := diff.Markdown(hostileReport(), diff.MarkdownOptions{Link: func(p string) string { return "https://forge.example/r/" + p }})
	if bytes.Contains(md, []byte("<!-- expsync-report")) {
		t.Errorf("the report carries a marker from the repository's text:\n%s", md)
	}
	if bytes.ContainsAny(md, "\x1b\u202e") {
		t.Errorf("the report carries control or bidi characters")
	}
	out := checkRenderedMarkdown(t, md, renderedExpectations{tables: -1, linkPrefix: "https://forge.example/r/results/exp/",
		texts: []string{"[x](javascript:alert(1))", "<img src=x onerror=alert(1)>", "exp<script>alert(1)</script>|x", "@\u200badmin"}})
	if strings.Contains(htmlText(out), "@admin") {
		t.Errorf("the report mentions @admin")
	}
	if strings.Contains(out, "<img") || strings.Contains(out, "javascript:") && strings.Contains(out, "href=\"javascript") {
		t.Errorf("an image or a javascript link rendered:\n%s", out)
	}
	var text bytes.Buffer
	if err := diff.Text(&text, hostileReport()); err != nil {
		t.Fatal(err)
	}
	if bytes.ContainsAny(text.Bytes(), "\x1b\u202e") {
		t.Errorf("the text report carries a terminal escape or a bidi override")
	}
}

// bigReport is a 10,000-run sweep whose every run changed, plus many
// added runs and unverified folders.
func bigReport(runs int) *diff.Report {
	e := diff.Experiment{Name: "huge", Params: []string{"seed"}, Metrics: []string{"loss"}}
	for i := 0; i < runs; i++ {
		b := diff.Run{ID: fmt.Sprintf("%064x", i), Status: "Succeeded", Params: map[string]any{"seed": i}, Metrics: map[string]float64{"loss": float64(i)}}
		h := b
		h.ID = fmt.Sprintf("%064x", i+runs)
		h.Metrics = map[string]float64{"loss": float64(i) + 0.5}
		p := diff.Pair{Base: b, Head: h, Metrics: []diff.MetricChange{{Name: "loss", Base: f(float64(i)), Head: f(float64(i) + 0.5), Abs: f(0.5)}}}
		if i%100 == 0 {
			p.Head.Status, p.StatusChange, p.Regression = "Failed", "Succeeded → Failed", true
			e.Counts.Regressions++
		}
		e.Changed = append(e.Changed, p)
		e.Added = append(e.Added, h)
	}
	e.Counts.Changed, e.Counts.Added = runs, runs
	r := &diff.Report{Base: diff.SideInfo{Label: "main"}, Head: diff.SideInfo{Label: "pr-8"}, Experiments: []diff.Experiment{e}, Totals: e.Counts}
	for i := 0; i < runs; i++ {
		r.Unverified = append(r.Unverified, diff.Unverified{Side: "head", Dir: fmt.Sprintf("results/huge/%064x", i), Reason: "envelope: not signed"})
	}
	return r
}

// TestMarkdownFitsTheForgeLimit: a 10,000-run sweep's report stays under
// the comment limit, says it left rows out, links the full diff, and
// still leads with the summary and the regressions.
func TestMarkdownFitsTheForgeLimit(t *testing.T) {
	const limit = 65536
	full := "The whole diff: [results/DIFF.md](https://forge.example/r/DIFF.md)."
	r := bigReport(10000)
	md := diff.Markdown(r, diff.MarkdownOptions{MaxBytes: limit, Full: full})
	if len(md) > limit {
		t.Fatalf("%d bytes, limit %d", len(md), limit)
	}
	checkRenderedMarkdown(t, md, renderedExpectations{tables: -1, linkPrefix: "https://forge.example/r/DIFF.md",
		texts: []string{"leaves rows out", "The whole diff", "100 runs succeeded on the base and fail on the head", "10000 changed"}})
	unbounded := diff.Markdown(r, diff.MarkdownOptions{})
	if len(unbounded) <= limit {
		t.Fatalf("the unbounded report is %d bytes: the test needs one over the limit", len(unbounded))
	}
	t.Logf("10,000 changed + 10,000 added runs + 10,000 unverified folders: %d bytes uncut, %d bytes in the comment (limit %d)", len(unbounded), len(md), limit)

	// Thousands of experiments: the summary itself is cut.
	many := &diff.Report{Base: diff.SideInfo{Label: "main"}, Head: diff.SideInfo{Label: "pr"}}
	for i := 0; i < 5000; i++ {
		name := fmt.Sprintf("experiment-%05d-%s", i, strings.Repeat("x", 40))
		many.Experiments = append(many.Experiments, diff.Experiment{Name: name, Counts: diff.Counts{Added: 1},
			Added: []diff.Run{{ID: fmt.Sprintf("%064x", i), Status: "Succeeded"}}})
		many.Totals.Added++
	}
	md = diff.Markdown(many, diff.MarkdownOptions{MaxBytes: limit, Full: full})
	if len(md) > limit {
		t.Fatalf("5,000 experiments: %d bytes, limit %d", len(md), limit)
	}
	checkRenderedMarkdown(t, md, renderedExpectations{tables: -1, linkPrefix: "https://forge.example/r/DIFF.md", texts: []string{"The whole diff", "5000 added"}})

	// A tiny limit still ends with the note.
	md = diff.Markdown(r, diff.MarkdownOptions{MaxBytes: 300, Full: full})
	if len(md) > 300 || !bytes.Contains(md, []byte("whole diff")) {
		t.Errorf("300-byte limit: %d bytes: %s", len(md), md)
	}
}

func BenchmarkMarkdown10000Runs(b *testing.B) {
	r := bigReport(10000)
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		diff.Markdown(r, diff.MarkdownOptions{MaxBytes: 65536})
	}
}
