package diff_test

import (
	"bytes"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"

	"github.com/expsync/expsync/internal/diff"
)

// FuzzEscapeMarkdown: whatever text a repository holds, once escaped it is
// one table cell of plain text — no element, link, image or extra cell —
// rendered by a CommonMark parser with GitHub's extensions and raw HTML
// allowed, as forges allow some.
func FuzzEscapeMarkdown(f *testing.F) {
	for _, s := range []string{hostile, "a|b", "<b>x</b>", "[x](y)", "![i](u)", "`c`", "**b**", "@user", "https://evil.example", "www.evil.example",
		"&lt;script&gt;", "\\|", "<!-- x -->", "x\n| y | z |", "<details>", "~~s~~", "[^1]", "\u202e"} {
		f.Add(s)
	}
	gm := goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))
	f.Fuzz(func(t *testing.T, s string) {
		cell := diff.EscapeMarkdown(s, 0) + " " + diff.CodeSpan(s, 0)
		if strings.ContainsAny(cell, "\n\r") {
			t.Fatalf("a line break survived: %q", cell)
		}
		md := "| a | b |\n| --- | --- |\n| x | " + cell + " |\n"
		var buf bytes.Buffer
		if err := gm.Convert([]byte(md), &buf); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		for _, m := range tagRE.FindAllStringSubmatch(out, -1) {
			switch strings.ToLower(m[2]) {
			case "table", "thead", "tbody", "tr", "th", "td", "code":
			default:
				t.Fatalf("%q renders a <%s> element:\n%s", s, m[2], out)
			}
		}
		if n := strings.Count(out, "<td"); n != 2 {
			t.Fatalf("%q makes %d cells in a row of 2:\n%s", s, n, out)
		}
	})
}
