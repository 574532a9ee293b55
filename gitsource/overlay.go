package gitsource

import (
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// overlay keeps the objects a commit-back creates in memory, over the
// cache's storage: a commit of 1,000 files would otherwise write some 2,000
// loose object files only to pack them again for the push. The objects
// reach the cache through the next fetch, if they are ever needed.
type overlay struct {
	*filesystem.Storage
	mem map[plumbing.Hash]plumbing.EncodedObject
}

func newOverlay(st *filesystem.Storage) *overlay {
	return &overlay{Storage: st, mem: map[plumbing.Hash]plumbing.EncodedObject{}}
}

func (o *overlay) NewEncodedObject() plumbing.EncodedObject { return &plumbing.MemoryObject{} }

func (o *overlay) SetEncodedObject(obj plumbing.EncodedObject) (plumbing.Hash, error) {
	h := obj.Hash()
	if o.Storage.HasEncodedObject(h) == nil {
		return h, nil // already in the cache (an unchanged blob or tree)
	}
	o.mem[h] = obj
	return h, nil
}

func (o *overlay) EncodedObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if obj, ok := o.mem[h]; ok {
		if t != plumbing.AnyObject && obj.Type() != t {
			return nil, plumbing.ErrObjectNotFound
		}
		return obj, nil
	}
	return o.Storage.EncodedObject(t, h)
}

func (o *overlay) DeltaObject(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if _, ok := o.mem[h]; ok {
		return o.EncodedObject(t, h)
	}
	return o.Storage.DeltaObject(t, h)
}

func (o *overlay) HasEncodedObject(h plumbing.Hash) error {
	if _, ok := o.mem[h]; ok {
		return nil
	}
	return o.Storage.HasEncodedObject(h)
}

func (o *overlay) EncodedObjectSize(h plumbing.Hash) (int64, error) {
	if obj, ok := o.mem[h]; ok {
		return obj.Size(), nil
	}
	return o.Storage.EncodedObjectSize(h)
}
