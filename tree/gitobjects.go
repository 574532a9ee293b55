package tree

import (
	"fmt"
	"io/fs"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// GitObjects is a DirReader over the Git tree root in an object store (a
// go-git repository's Storer): what `expsync verify --repo` has. Entry
// sizes are left zero; names, modes and IDs are Git's own.
func GitObjects(s storer.EncodedObjectStorer, root string) (DirReader, error) {
	if !plumbing.IsHash(root) || len(root) != 40 {
		return nil, fmt.Errorf("%q is not a Git object ID", root)
	}
	return gitObjects{s: s, root: plumbing.NewHash(root)}, nil
}

type gitObjects struct {
	s    storer.EncodedObjectStorer
	root plumbing.Hash
}

func (g gitObjects) ReadDir(p string) ([]Entry, error) {
	clean, err := Clean(p)
	if err != nil {
		return nil, err
	}
	t, err := object.GetTree(g.s, g.root)
	if err != nil {
		return nil, fmt.Errorf("read tree %s: %w", g.root, err)
	}
	if clean != "" {
		for _, name := range strings.Split(clean, "/") {
			e, err := t.FindEntry(name)
			if err != nil || e.Mode != filemode.Dir {
				return nil, &fs.PathError{Op: "readdir", Path: p, Err: ErrNotExist}
			}
			if t, err = object.GetTree(g.s, e.Hash); err != nil {
				return nil, fmt.Errorf("read tree %s of %s: %w", e.Hash, p, err)
			}
		}
	}
	out := make([]Entry, len(t.Entries))
	for i, e := range t.Entries {
		out[i] = Entry{Name: e.Name, Mode: Mode(e.Mode), Hash: Hash(e.Hash.String())}
	}
	return out, nil
}
