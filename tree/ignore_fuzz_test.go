package tree

import (
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
)

// FuzzIgnorePattern: any ignore file parses and matches without panicking,
// and a line that excludes a path is undone by the same line negated after
// it (the last matching pattern decides).
func FuzzIgnorePattern(f *testing.F) {
	for _, seed := range [][2]string{
		{"__pycache__/", "a/__pycache__"}, {"*.py[cod]", "x.pyc"}, {"[!a]*.txt", "b.txt"}, {"logs/**", "logs/a/b"},
		{"/build/", "build"}, {"a\\[x\\].txt", "a[x].txt"}, {"foo bar\\ ", "foo bar "}, {"**/deep.txt", "x/y/deep.txt"},
		{"[", "["}, {"\\", "a"}, {"!", "a"}, {"/", "a"}, {"**/", "a/b"},
	} {
		f.Add(seed[0], seed[1], true)
	}
	f.Fuzz(func(t *testing.T, line, path string, isDir bool) {
		clean, err := Clean(path)
		if err != nil || clean == "" || strings.HasPrefix(line, "!") || strings.HasPrefix(line, "#") || strings.TrimSpace(line) == "" {
			return
		}
		parts := strings.Split(clean, "/")
		ps := parseIgnore([]byte(line+"\n"+"!"+line+"\n"), []string{parts[0]})
		if len(ps) != 2 {
			return // the line held a newline or a CR: more lines
		}
		if ps[0].match(parts, isDir, nil) == gitignore.Exclude && ignoredBy(ps, parts, isDir) {
			t.Errorf("%q excludes %q, yet %q after it leaves it excluded", line, clean, "!"+line)
		}
	})
}
