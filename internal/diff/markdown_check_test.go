package diff_test

import (
	"bytes"
	"regexp"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/renderer/html"
)

type renderedExpectations struct {
	tables int
	texts  []string
	// linkPrefix: every link must start with it or with "#".
	linkPrefix string
}

// allowedTags are the HTML elements a report may render to: what its own
// Markdown makes, plus <details>/<summary> it writes itself. Anything else
// came from the repository and escaped its escaping.
var allowedTags = map[string]bool{"h3": true, "h4": true, "p": true, "table": true, "thead": true, "tbody": true,
	"tr": true, "th": true, "td": true, "strong": true, "em": true, "code": true, "a": true, "ul": true,
	"li": true, "blockquote": true, "hr": true, "details": true, "summary": true}

var (
	tagRE  = regexp.MustCompile(`<(/?)([a-zA-Z][a-zA-Z0-9]*)`)
	hrefRE = regexp.MustCompile(`href="([^"]*)"`)
)

// checkRenderedMarkdown renders md with a CommonMark parser (goldmark with
// GitHub's extensions, raw HTML allowed as forges allow some) and checks
// the result: the expected number of tables, every row with as many cells
// as its header, no element a report does not make, links only where
// expected, and the texts a reader must see. It returns the HTML.
func checkRenderedMarkdown(t *testing.T, md []byte, want renderedExpectations) string {
	t.Helper()
	var buf bytes.Buffer
	gm := goldmark.New(goldmark.WithExtensions(extension.GFM), goldmark.WithRendererOptions(html.WithUnsafe()))
	if err := gm.Convert(md, &buf); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	if n := strings.Count(out, "<table>"); want.tables >= 0 && n != want.tables {
		t.Errorf("%d tables rendered, want %d:\n%s", n, want.tables, out)
	}
	for _, m := range tagRE.FindAllStringSubmatch(out, -1) {
		if !allowedTags[strings.ToLower(m[2])] {
			t.Errorf("the report renders a <%s> element:\n%s", m[2], out)
			break
		}
	}
	for _, m := range hrefRE.FindAllStringSubmatch(out, -1) {
		if !strings.HasPrefix(m[1], "#") && (want.linkPrefix == "" || !strings.HasPrefix(m[1], want.linkPrefix)) {
			t.Errorf("unexpected link %q", m[1])
		}
	}
	for _, table := range strings.Split(out, "<table>")[1:] {
		table = table[:strings.Index(table, "</table>")]
		rows := strings.Split(table, "<tr>")[1:]
		if len(rows) == 0 {
			continue
		}
		head := strings.Count(rows[0], "<th")
		for _, r := range rows[1:] {
			if c := strings.Count(r, "<td"); c != head {
				t.Errorf("a table row has %d cells, its header %d: %s", c, head, r)
			}
		}
	}
	text := htmlText(out)
	for _, s := range want.texts {
		if !strings.Contains(text, s) {
			t.Errorf("the rendered report lacks %q:\n%s", s, text)
		}
	}
	return out
}

var anyTag = regexp.MustCompile(`<[^>]*>`)

// htmlText is the rendered text without tags, entities decoded as a
// browser shows them.
func htmlText(h string) string {
	s := anyTag.ReplaceAllString(h, "")
	return strings.NewReplacer("&lt;", "<", "&gt;", ">", "&quot;", `"`, "&amp;", "&", "&#39;", "'").Replace(s)
}
