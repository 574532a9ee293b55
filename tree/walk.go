package tree

import (
	"fmt"
	"io/fs"
)

// TreeHash returns the Git tree ID of the folder at path ("" for the root),
// what `git rev-parse HEAD:path` prints for a commit of the same files.
func TreeHash(r Reader, path string) (Hash, error) {
	e, err := r.Stat(path)
	if err != nil {
		return "", err
	}
	if !e.IsDir() {
		return "", &fs.PathError{Op: "tree hash", Path: path, Err: fmt.Errorf("not a folder")}
	}
	return e.Hash, nil
}

// WalkFunc is called for every entry below the walked folder with its
// repository path. Returning fs.SkipDir for a folder skips it; any other
// error stops the walk.
type WalkFunc func(path string, e Entry) error

// Walk visits the entries below folder root in Git order, depth first.
func Walk(r Reader, root string, fn WalkFunc) error {
	clean, err := Clean(root)
	if err != nil {
		return err
	}
	return walk(r, clean, fn)
}

func walk(r Reader, dir string, fn WalkFunc) error {
	entries, err := r.ReadDir(dir)
	if err != nil {
		return err
	}
	for _, e := range entries {
		p := Join(dir, e.Name)
		err := fn(p, e)
		if err == fs.SkipDir && e.IsDir() {
			continue
		}
		if err != nil {
			return err
		}
		if e.IsDir() {
			if err := walk(r, p, fn); err != nil {
				return err
			}
		}
	}
	return nil
}
