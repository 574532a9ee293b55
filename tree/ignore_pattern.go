package tree

import (
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// ignorePattern is one line of an ignore file, matched by go-git's
// gitignore package. Dir asks about each entry as it lists its folder (it
// never enters an ignored folder, as Git does not), so it needs the answer
// for the entry itself; go-git also lets a pattern match a parent folder's
// name, which is harmless for exclusions but makes "!*/" re-include every
// file. A pattern without a slash is therefore asked about the base name
// only, as Git matches it.
type ignorePattern struct {
	p        gitignore.Pattern
	domain   int  // components of the folder whose ignore file holds it
	baseName bool // no slash but a trailing one
}

// parsePattern parses one non-comment line, correcting two spellings
// go-git reads differently from Git: "[!...]" (Go's glob negates a class
// with "^") and a trailing "/**", which Git does not let match the folder
// itself (go-git's "/*" has Git's meaning here, deeper paths included).
func parsePattern(line string, domain []string) ignorePattern {
	line = negatedClasses(line)
	body := strings.TrimPrefix(line, "!")
	if !strings.HasSuffix(body, "\\ ") {
		body = strings.TrimRight(body, " ")
	}
	if strings.HasSuffix(body, "/**") {
		line = strings.TrimRight(line, " ")
		line = line[:len(line)-1]
	}
	body = strings.TrimSuffix(body, "/")
	return ignorePattern{
		p:        gitignore.ParsePattern(line, domain),
		domain:   len(domain),
		baseName: !strings.Contains(body, "/"),
	}
}

// negatedClasses turns an unescaped "[!" into "[^".
func negatedClasses(s string) string {
	if !strings.Contains(s, "[!") {
		return s
	}
	b := []byte(s)
	for i := 0; i+1 < len(b); i++ {
		switch {
		case b[i] == '\\':
			i++ // the next byte is literal
		case b[i] == '[' && b[i+1] == '!':
			b[i+1] = '^'
		}
	}
	return string(b)
}

// match asks go-git about path; buf is scratch space for the shortened
// path of a base-name pattern (nil is fine).
func (ip ignorePattern) match(path []string, isDir bool, buf []string) gitignore.MatchResult {
	if ip.baseName && len(path) > ip.domain+1 {
		path = append(append(buf[:0], path[:ip.domain]...), path[len(path)-1])
	}
	return ip.p.Match(path, isDir)
}

// ignoredBy reports whether path (work-tree components) is ignored: the
// last pattern that matches decides, as in Git and gitignore.Matcher.
func ignoredBy(ps []ignorePattern, path []string, isDir bool) bool {
	buf := make([]string, 0, len(path))
	for i := len(ps) - 1; i >= 0; i-- {
		switch ps[i].match(path, isDir, buf) {
		case gitignore.Exclude:
			return true
		case gitignore.Include:
			return false
		}
	}
	return false
}
