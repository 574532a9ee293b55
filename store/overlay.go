package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
)

// Overlay is a Store that reads from Lower and Upper and writes to Upper
// alone: what a pod's init container uses, reading the objects every run
// shares from a read-only mount and writing what it fetches to the run's
// own prefix. Lower is read first, since it is the store the controller
// wrote; Upper may hold what an earlier attempt of the run left, and is
// checked like everything a run reads.
type Overlay struct {
	Lower, Upper Store

	// shadowed are objects whose Lower copy failed verification: they are
	// read from Upper from then on (Lower may be read-only and keep its
	// bad copy).
	shadowed sync.Map
}

var (
	_ Store    = (*Overlay)(nil)
	_ Verifier = (*Overlay)(nil)
)

// Put implements Store: into Upper.
func (o *Overlay) Put(ctx context.Context, r io.Reader, want string) (Object, error) {
	return o.Upper.Put(ctx, r, want)
}

// Open implements Store.
func (o *Overlay) Open(ctx context.Context, sha string) (io.ReadCloser, error) {
	if _, bad := o.shadowed.Load(sha); !bad {
		rc, err := o.Lower.Open(ctx, sha)
		if !errors.Is(err, ErrNotFound) {
			return rc, err
		}
	}
	return o.Upper.Open(ctx, sha)
}

// Has implements Store.
func (o *Overlay) Has(ctx context.Context, sha string) (bool, error) {
	if _, bad := o.shadowed.Load(sha); !bad {
		if ok, err := o.Lower.Has(ctx, sha); ok || err != nil {
			return ok, err
		}
	}
	return o.Upper.Has(ctx, sha)
}

// Verify implements Verifier: the copy Open would read is checked. A bad
// copy in Lower shadows it, so a caller that stores the right bytes again
// (a URL input fetched anew) reads them from Upper.
func (o *Overlay) Verify(ctx context.Context, sha string) error {
	if _, bad := o.shadowed.Load(sha); !bad {
		ok, err := o.Lower.Has(ctx, sha)
		if err != nil {
			return err
		}
		if ok {
			err := verify(ctx, o.Lower, sha)
			var mm *MismatchError
			if errors.As(err, &mm) {
				o.shadowed.Store(sha, true)
			}
			return err
		}
	}
	return verify(ctx, o.Upper, sha)
}

func verify(ctx context.Context, s Store, sha string) error {
	if v, ok := s.(Verifier); ok {
		return v.Verify(ctx, sha)
	}
	ok, err := s.Has(ctx, sha)
	if err == nil && !ok {
		err = fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	return err
}

// PutTree implements Store: into Upper.
func (o *Overlay) PutTree(ctx context.Context, treeID string, m Manifest) error {
	return o.Upper.PutTree(ctx, treeID, m)
}

// Tree implements Store.
func (o *Overlay) Tree(ctx context.Context, treeID string) (Manifest, error) {
	m, err := o.Lower.Tree(ctx, treeID)
	if errors.Is(err, ErrNotFound) {
		return o.Upper.Tree(ctx, treeID)
	}
	return m, err
}

// PutRunFile implements Store: into Upper.
func (o *Overlay) PutRunFile(ctx context.Context, runID, name string, data []byte) error {
	return o.Upper.PutRunFile(ctx, runID, name, data)
}

// RunFile implements Store: Upper's alone, where this overlay's runs are
// recorded.
func (o *Overlay) RunFile(ctx context.Context, runID, name string) ([]byte, error) {
	return o.Upper.RunFile(ctx, runID, name)
}

// LockRun implements Store: Upper's lock.
func (o *Overlay) LockRun(ctx context.Context, runID string) (func() error, error) {
	return o.Upper.LockRun(ctx, runID)
}
