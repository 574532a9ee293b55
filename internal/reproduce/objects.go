package reproduce

import (
	"errors"
	"fmt"
	"io"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"

	"github.com/expsync/expsync/tree"
)

// Objects finds the Git objects an attestation names, by ID: a clone's or
// a fetched history's object store. Trees and blobs are named by their
// content, so any store that has them has the very bytes the run used,
// whatever commits or branches hold them now.
type Objects struct {
	s storer.EncodedObjectStorer
}

// NewObjects reads objects from a go-git object store.
func NewObjects(s storer.EncodedObjectStorer) *Objects { return &Objects{s: s} }

// ErrMissingObject is wrapped when the repository lacks an object.
var ErrMissingObject = errors.New("not in the repository")

// Tree opens a tree by ID.
func (o *Objects) Tree(id string) (tree.Reader, error) {
	r, err := tree.GitTree(o.s, id)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("tree %s: %w", id, ErrMissingObject)
	}
	return r, err
}

// Blob reads a blob by ID, refusing one larger than limit bytes.
func (o *Objects) Blob(id string, limit int64) ([]byte, error) {
	if !plumbing.IsHash(id) || len(id) != 40 {
		return nil, fmt.Errorf("%q is not a Git object ID", id)
	}
	b, err := object.GetBlob(o.s, plumbing.NewHash(id))
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		return nil, fmt.Errorf("blob %s: %w", id, ErrMissingObject)
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	if limit > 0 && b.Size > limit {
		return nil, fmt.Errorf("blob %s: %d bytes, the limit is %d", id, b.Size, limit)
	}
	r, err := b.Reader()
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, b.Size+1))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", id, err)
	}
	return data, nil
}

// TreeWithout is the ID tree id would have without paths (relative to
// it): how a run identity's contextTree is recomputed from the real tree.
func (o *Objects) TreeWithout(id string, paths []string) (string, error) {
	r, err := tree.GitObjects(o.s, id)
	if err != nil {
		return "", err
	}
	h, err := tree.TreeIDWithout(r, "", paths)
	if err != nil {
		return "", fmt.Errorf("tree %s without %v: %w", id, paths, err)
	}
	return string(h), nil
}
