package tree_test

import (
	"errors"
	"strings"
	"testing"

	"github.com/expsync/expsync/tree"
)

// FuzzTreeIDWithout checks TreeIDWithout against an independent way to the
// same tree: removing the paths from an in-memory copy (Memory.Remove, whose
// IDs TestDirAndMemoryMatchGitCLI checks against git). Lines of the input
// are files to write; lines starting with "-" are paths to remove.
func FuzzTreeIDWithout(f *testing.F) {
	f.Add("a/b.yaml\na/c.py\nd\n-a/b.yaml")
	f.Add("x/y/z\nx/w\n-x/y\n-x/w")
	f.Add("e/pi.yaml\ne/pi.py\n-e/pi.yaml\n-e/missing\n-e/pi.py/x")
	f.Fuzz(func(t *testing.T, spec string) {
		lines := strings.Split(spec, "\n")
		if len(lines) > 64 {
			return
		}
		full, stripped := tree.NewMemory(), tree.NewMemory()
		var remove []string
		for _, l := range lines {
			if p, ok := strings.CutPrefix(l, "-"); ok {
				if c, err := tree.Clean(p); err == nil && c != "" {
					remove = append(remove, c)
				}
				continue
			}
			if full.Write(l, []byte(l), tree.ModeFile) == nil {
				if err := stripped.Write(l, []byte(l), tree.ModeFile); err != nil {
					t.Fatalf("second copy refused %q: %v", l, err)
				}
			}
		}
		for _, p := range remove {
			if err := stripped.Remove(p); err != nil && !errors.Is(err, tree.ErrNotExist) {
				t.Fatalf("remove %q: %v", p, err)
			}
		}
		got, err := tree.TreeIDWithout(full, "", remove)
		if err != nil {
			t.Fatalf("TreeIDWithout: %v", err)
		}
		want, err := tree.TreeHash(stripped, "")
		if err != nil {
			t.Fatal(err)
		}
		if got != want {
			t.Errorf("TreeIDWithout %s, removing from a copy %s (remove %q)", got, want, remove)
		}
	})
}
