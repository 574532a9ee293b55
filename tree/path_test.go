package tree_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/expsync/expsync/tree"
)

func TestClean(t *testing.T) {
	for in, want := range map[string]string{"": "", ".": "", "./a//b/": "a/b", "a/./b": "a/b", "/": "", "a/b..c": "a/b..c", "...": "..."} {
		got, err := tree.Clean(in)
		if in == "/" {
			if !errors.Is(err, tree.ErrEscapes) {
				t.Errorf("Clean(%q) = %q, %v; want ErrEscapes", in, got, err)
			}
			continue
		}
		if err != nil || got != want {
			t.Errorf("Clean(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

// FuzzClean: whatever Clean accepts stays below the root: no absolute path,
// no ".." component, no NUL or backslash, no empty component; and cleaning
// is idempotent.
func FuzzClean(f *testing.F) {
	for _, s := range []string{"", ".", "a/b", "../x", "a/../../b", "/etc", "a\x00b", `a\..\b`, "a//b/./c/", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := tree.Clean(p)
		if err != nil {
			if !errors.Is(err, tree.ErrEscapes) {
				t.Fatalf("Clean(%q) error %v does not wrap ErrEscapes", p, err)
			}
			return
		}
		if strings.HasPrefix(c, "/") || strings.ContainsAny(c, "\x00\\") {
			t.Fatalf("Clean(%q) = %q", p, c)
		}
		if c != "" {
			for _, part := range strings.Split(c, "/") {
				if part == "" || part == "." || part == ".." {
					t.Fatalf("Clean(%q) = %q has component %q", p, c, part)
				}
			}
		}
		if again, err := tree.Clean(c); err != nil || again != c {
			t.Fatalf("Clean(Clean(%q)) = %q, %v; want %q", p, again, err, c)
		}
		if !tree.Contains("", c) || (c != "" && !tree.Contains(c, c+"/x")) || (c != "" && tree.Contains(c+"/x", c)) {
			t.Fatalf("Contains inconsistent for %q", c)
		}
	})
}
