package diff

import (
	"strings"
	"unicode"
	"unicode/utf8"
)

// Everything a pull request's author controls — experiment and parameter
// names and values, metric names, failure reasons, the names of folders
// pushed into results/ — is escaped before it enters a comment: a forge
// renders the comment as Markdown with some HTML, so unescaped text could
// add links, images, HTML, fake tables or @-mentions to a report that
// speaks for expsync.

// maxCellRunes keeps a table cell to one readable line.
const maxCellRunes = 60

// mdText makes s inert Markdown inside a line: every ASCII punctuation
// character but .,-+%=() is backslash-escaped (CommonMark makes each a literal then: no emphasis,
// link, HTML, entity or table pipe survives), line breaks and other
// control characters become spaces, an @ is followed by a zero-width
// space so no one is mentioned, and s is clipped to n runes.
func mdText(s string, n int) string {
	s = clip(plain(s), n)
	var b strings.Builder
	for i, r := range s {
		switch {
		case r == '.' && i >= 3 && strings.EqualFold(s[i-3:i], "www"):
			// GitHub's autolinks turn "www.x" into a link: not after "www\.".
			b.WriteString(`\.`)
		case strings.ContainsRune(".,-+%=()", r):
			// .,-+%= are special only at the start of a line, where
			// escaped text never stands (it follows a table pipe or a list
			// marker), and ( ) only after a ] (escaped): left as they
			// are, numbers and changes stay readable in the source.
			b.WriteRune(r)
		case r < utf8.RuneSelf && unicode.IsPunct(r) || r < utf8.RuneSelf && unicode.IsSymbol(r):
			b.WriteByte('\\')
			b.WriteRune(r)
			if r == '@' {
				b.WriteRune('\u200b')
			}
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// EscapeMarkdown is mdText for callers composing a report around a diff:
// s made inert inside a Markdown line, clipped to n runes (0: no clip).
func EscapeMarkdown(s string, n int) string { return mdText(s, n) }

// CodeSpan writes s as an inline code span: its content renders as typed
// (no Markdown, no HTML), so only what would end it is replaced — a
// backtick by ', a line break by a space, and a | by ¦ (in a table a pipe
// ends the cell even inside a code span); clipped to n runes (0: no clip).
func CodeSpan(s string, n int) string {
	return "`" + strings.NewReplacer("`", "'", "|", "¦").Replace(clip(plain(s), n)) + "`"
}

// plain replaces control characters (terminal escapes, line breaks) and
// Unicode format characters (bidirectional overrides that make text read
// other than it is) by spaces and collapses white space.
func plain(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	s = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) || unicode.Is(unicode.Cf, r) {
			return ' '
		}
		return r
	}, s)
	return strings.Join(strings.Fields(s), " ")
}

// clip shortens s to n runes, marking the cut.
func clip(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
