package tree

import (
	"fmt"
	"io/fs"
	"sort"
)

// lister is what Memory and Dir provide; snapshot builds the Reader methods
// on top of it, so both resolve paths, symlinks and limits the same way.
type lister interface {
	// listDir returns the entries of the folder dir (a cleaned path that
	// names a folder), sorted, with their IDs.
	listDir(dir string) ([]Entry, error)
	// readBlob returns the content of the regular file p described by e.
	readBlob(p string, e Entry, limit int64) ([]byte, error)
}

type snapshot struct{ l lister }

func (s snapshot) Stat(p string) (Entry, error) {
	clean, err := Clean(p)
	if err != nil {
		return Entry{}, err
	}
	return s.stat(clean, "stat", p)
}

// stat resolves clean one component at a time, so a symlink on the way is
// refused rather than followed.
func (s snapshot) stat(clean, op, orig string) (Entry, error) {
	if clean == "" {
		entries, err := s.l.listDir("")
		if err != nil {
			return Entry{}, err
		}
		id, err := TreeID(entries)
		if err != nil {
			return Entry{}, err
		}
		return Entry{Mode: ModeDir, Hash: id}, nil
	}
	dir := ""
	rest := clean
	for {
		name, tail, more := cut(rest)
		entries, err := s.l.listDir(dir)
		if err != nil {
			return Entry{}, err
		}
		e, ok := find(entries, name)
		if !ok {
			return Entry{}, &fs.PathError{Op: op, Path: orig, Err: ErrNotExist}
		}
		if !more {
			return e, nil
		}
		switch {
		case e.Mode == ModeSymlink:
			return Entry{}, &fs.PathError{Op: op, Path: orig, Err: ErrSymlink}
		case !e.IsDir():
			return Entry{}, &fs.PathError{Op: op, Path: orig, Err: ErrNotExist}
		}
		dir = Join(dir, name)
		rest = tail
	}
}

func (s snapshot) ReadDir(p string) ([]Entry, error) {
	clean, err := Clean(p)
	if err != nil {
		return nil, err
	}
	e, err := s.stat(clean, "readdir", p)
	if err != nil {
		return nil, err
	}
	if !e.IsDir() {
		return nil, &fs.PathError{Op: "readdir", Path: p, Err: errNotDir(e)}
	}
	entries, err := s.l.listDir(clean)
	if err != nil {
		return nil, err
	}
	return append([]Entry(nil), entries...), nil
}

func (s snapshot) ReadFile(p string, limit int64) ([]byte, error) {
	clean, err := Clean(p)
	if err != nil {
		return nil, err
	}
	e, err := s.stat(clean, "read", p)
	if err != nil {
		return nil, err
	}
	switch {
	case e.Mode == ModeSymlink:
		return nil, &fs.PathError{Op: "read", Path: p, Err: ErrSymlink}
	case e.Mode != ModeFile && e.Mode != ModeExecutable:
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("not a regular file (mode %o)", e.Mode)}
	case limit > 0 && e.Size > limit:
		return nil, &fs.PathError{Op: "read", Path: p, Err: fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, e.Size, limit)}
	}
	return s.l.readBlob(clean, e, limit)
}

func errNotDir(e Entry) error {
	if e.Mode == ModeSymlink {
		return ErrSymlink
	}
	return fmt.Errorf("not a folder")
}

func cut(p string) (first, rest string, more bool) {
	for i := 0; i < len(p); i++ {
		if p[i] == '/' {
			return p[:i], p[i+1:], true
		}
	}
	return p, "", false
}

// find looks name up in Git-sorted entries.
func find(entries []Entry, name string) (Entry, bool) {
	// Git order puts "a/" among names by its slash, so search both spellings.
	for _, key := range []string{name, name + "/"} {
		i := sort.Search(len(entries), func(i int) bool { return sortName(entries[i]) >= key })
		if i < len(entries) && entries[i].Name == name {
			return entries[i], true
		}
	}
	return Entry{}, false
}
