package gitsource

import (
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

func hasCommit(st storer.EncodedObjectStorer, h plumbing.Hash) bool {
	return st.HasEncodedObject(h) == nil
}

func getCommit(st storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	return object.GetCommit(st, h)
}
