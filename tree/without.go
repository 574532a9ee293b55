package tree

import (
	"fmt"
	"sort"
	"strings"
)

// DirReader lists folders in Git order. Every Reader is one; GitObjects
// makes one of a Git object store, so a verifier holding only a repository
// can compute what a Reader computed.
type DirReader interface {
	ReadDir(path string) ([]Entry, error)
}

// TreeIDWithout returns the Git tree ID that the folder root of r would
// have with the paths in remove deleted. Paths are relative to root,
// slash-separated; a path names a file, a symlink or a whole folder.
// Folders left empty vanish, as Git records no empty folder; when nothing
// is left the result is EmptyTree. A path that does not exist (or that
// passes through a file) removes nothing. Only the folders on the way to a
// removed path are read, so the cost grows with len(remove), not with the
// size of the tree.
//
// The run identity uses it to name a context by its content without the
// experiment files in it (see render); `expsync verify` uses it over
// GitObjects to recompute that name from the context's real tree.
func TreeIDWithout(r DirReader, root string, remove []string) (Hash, error) {
	root, err := Clean(root)
	if err != nil {
		return "", err
	}
	rels := make([]string, 0, len(remove))
	for _, p := range remove {
		c, err := Clean(p)
		if err != nil {
			return "", fmt.Errorf("path to remove %q: %w", p, err)
		}
		if c == "" {
			return "", fmt.Errorf("path to remove %q names the folder itself", p)
		}
		rels = append(rels, c)
	}
	id, empty, err := treeWithout(r, root, rels)
	if err != nil {
		return "", err
	}
	if empty {
		return EmptyTree, nil
	}
	return id, nil
}

// treeWithout rebuilds dir's entry list without remove (relative to dir);
// empty reports that nothing is left.
func treeWithout(r DirReader, dir string, remove []string) (id Hash, empty bool, err error) {
	entries, err := r.ReadDir(dir)
	if err != nil {
		return "", false, err
	}
	drop := map[string]bool{}
	below := map[string][]string{}
	for _, p := range remove {
		if first, rest, more := strings.Cut(p, "/"); more {
			below[first] = append(below[first], rest)
		} else {
			drop[first] = true
		}
	}
	kept := make([]Entry, 0, len(entries))
	for _, e := range entries {
		if drop[e.Name] {
			continue
		}
		if sub, ok := below[e.Name]; ok && e.IsDir() {
			h, empty, err := treeWithout(r, Join(dir, e.Name), sub)
			if err != nil {
				return "", false, err
			}
			if empty {
				continue
			}
			e.Hash = h
		}
		kept = append(kept, e)
	}
	if len(kept) == 0 {
		return "", true, nil
	}
	id, err = TreeID(kept)
	return id, false, err
}

// PathsBelow returns the paths of files (repository paths) that lie inside
// folder dir, relative to dir, sorted and without duplicates.
func PathsBelow(dir string, files []string) []string {
	var out []string
	for _, f := range files {
		switch {
		case dir == "":
			out = append(out, f)
		case strings.HasPrefix(f, dir+"/"):
			out = append(out, f[len(dir)+1:])
		}
	}
	sort.Strings(out)
	n := 0
	for i, p := range out {
		if i == 0 || p != out[n-1] {
			out[n] = p
			n++
		}
	}
	return out[:n]
}
