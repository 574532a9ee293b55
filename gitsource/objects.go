package gitsource

import (
	"fmt"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

func hasCommit(st storer.EncodedObjectStorer, h plumbing.Hash) bool {
	return st.HasEncodedObject(h) == nil
}

func getCommit(st storer.EncodedObjectStorer, h plumbing.Hash) (*object.Commit, error) {
	return object.GetCommit(st, h)
}

// treeComplete checks that the commit, every tree under it and every blob
// it names are in the store (index lookups only; blobs are not read).
// Sub-trees that also appear under known (a tree already checked, or
// ZeroHash) are skipped: after an incremental fetch only what changed is
// checked.
func treeComplete(st storer.EncodedObjectStorer, commit plumbing.Hash, known plumbing.Hash) error {
	c, err := object.GetCommit(st, commit)
	if err != nil {
		return fmt.Errorf("commit %s: %w", commit, err)
	}
	skip := map[plumbing.Hash]bool{}
	if !known.IsZero() {
		collectTrees(st, known, skip)
	}
	return subtreeComplete(st, c.TreeHash, skip)
}

// collectTrees adds every tree ID under h to set (best effort).
func collectTrees(st storer.EncodedObjectStorer, h plumbing.Hash, set map[plumbing.Hash]bool) {
	if set[h] {
		return
	}
	t, err := object.GetTree(st, h)
	if err != nil {
		return
	}
	set[h] = true
	for _, e := range t.Entries {
		if e.Mode == filemode.Dir {
			collectTrees(st, e.Hash, set)
		}
	}
}

func subtreeComplete(st storer.EncodedObjectStorer, h plumbing.Hash, skip map[plumbing.Hash]bool) error {
	if skip[h] {
		return nil
	}
	t, err := object.GetTree(st, h)
	if err != nil {
		return fmt.Errorf("tree %s: %w", h, err)
	}
	for _, e := range t.Entries {
		switch {
		case e.Mode == filemode.Dir:
			if err := subtreeComplete(st, e.Hash, skip); err != nil {
				return err
			}
		case e.Mode == filemode.Submodule:
			// a submodule's commit lives in another repository
		default:
			if err := st.HasEncodedObject(e.Hash); err != nil {
				return fmt.Errorf("blob %s (%s): %w", e.Hash, e.Name, err)
			}
		}
	}
	return nil
}

// hasRefs reports whether the cache holds any fetched ref.
func hasRefs(st storer.ReferenceStorer) bool {
	iter, err := st.IterReferences()
	if err != nil {
		return true // unknown: be careful
	}
	found := false
	_ = iter.ForEach(func(r *plumbing.Reference) error {
		if isCacheRef(r.Name()) {
			found = true
			return storer.ErrStop
		}
		return nil
	})
	return found
}

// peel follows annotated tags to the commit they name (at most 10 levels).
func peel(st storer.EncodedObjectStorer, h plumbing.Hash) plumbing.Hash {
	for i := 0; i < 10; i++ {
		tag, err := object.GetTag(st, h)
		if err != nil {
			return h // not a tag (or absent): the caller reports what it finds
		}
		h = tag.Target
	}
	return h
}
