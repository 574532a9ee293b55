package tree

import (
	"fmt"
	"io"
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

// GitTree is a Reader over the Git tree root in an object store, read by
// ID: what a reproduction materialises when the commit that held the tree
// may be gone (a squash merge keeps trees reachable, not commits). Entry
// sizes are left zero; ReadFile enforces its limit on the blob itself.
// Symlinks are data: ReadLink returns a link's target.
func GitTree(s storer.EncodedObjectStorer, root string) (*GitTreeReader, error) {
	g, err := GitObjects(s, root)
	if err != nil {
		return nil, err
	}
	objs := g.(gitObjects)
	if _, err := object.GetTree(s, objs.root); err != nil {
		return nil, fmt.Errorf("tree %s: %w", root, err)
	}
	return &GitTreeReader{snapshot: snapshot{l: gitLister{objs}}, objs: objs}, nil
}

// GitTreeReader is a Git tree read by ID (see GitTree).
type GitTreeReader struct {
	snapshot
	objs gitObjects
}

// ReadLink returns the target of the symlink at p.
func (g *GitTreeReader) ReadLink(p string) (string, error) {
	e, err := g.Stat(p)
	if err != nil {
		return "", err
	}
	if e.Mode != ModeSymlink {
		return "", &fs.PathError{Op: "readlink", Path: p, Err: fmt.Errorf("not a symlink (mode %o)", e.Mode)}
	}
	b, err := gitLister{g.objs}.readBlob(p, e, 4096)
	return string(b), err
}

type gitLister struct{ gitObjects }

func (g gitLister) listDir(dir string) ([]Entry, error) { return g.ReadDir(dir) }

func (g gitLister) readBlob(p string, e Entry, limit int64) ([]byte, error) {
	b, err := object.GetBlob(g.s, plumbing.NewHash(string(e.Hash)))
	if err != nil {
		return nil, fmt.Errorf("read blob %s of %s: %w", e.Hash, p, err)
	}
	if limit > 0 && b.Size > limit {
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, b.Size, limit)}
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("read blob %s of %s: %w", e.Hash, p, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, b.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read blob %s of %s: %w", e.Hash, p, err)
	}
	if int64(len(data)) != b.Size {
		return nil, fmt.Errorf("read blob %s of %s: %d bytes, its header says %d", e.Hash, p, len(data), b.Size)
	}
	return data, nil
}
