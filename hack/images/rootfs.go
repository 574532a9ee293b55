package main

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"time"
)

// rootFS is an image's file tree, assembled in memory from chosen files so
// that the layer depends only on the files' bytes, modes and names — never
// on the mtimes, owners or extraction order of the folder they came from.
type rootFS struct {
	entries map[string]*entry
}

type entry struct {
	typ  byte // tar.TypeDir, tar.TypeReg or tar.TypeSymlink
	mode int64
	// uid and gid of the entry; 0 unless the recipe says otherwise.
	uid, gid int
	data     []byte // regular files
	link     string // symlinks
}

func newRootFS() *rootFS { return &rootFS{entries: map[string]*entry{}} }

// clean makes an image path relative without a leading slash ("usr/bin/x").
func clean(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" || c == "." {
		return "", fmt.Errorf("%q is the root, not a file", p)
	}
	return c, nil
}

func (r *rootFS) put(p string, e *entry) error {
	c, err := clean(p)
	if err != nil {
		return err
	}
	if old, ok := r.entries[c]; ok && old.typ != e.typ {
		return fmt.Errorf("%s is added twice with different types", c)
	}
	r.entries[c] = e
	// Parents are plain 0755 folders unless added explicitly.
	for dir := path.Dir(c); dir != "."; dir = path.Dir(dir) {
		if _, ok := r.entries[dir]; !ok {
			r.entries[dir] = &entry{typ: tar.TypeDir, mode: 0o755}
		}
	}
	return nil
}

// Dir adds a folder with its mode (for example 01777 for /tmp).
func (r *rootFS) Dir(p string, mode fs.FileMode) error {
	return r.put(p, &entry{typ: tar.TypeDir, mode: tarMode(mode)})
}

// File adds a file with the given content.
func (r *rootFS) File(p string, mode fs.FileMode, data []byte) error {
	return r.put(p, &entry{typ: tar.TypeReg, mode: tarMode(mode), data: data})
}

// Symlink adds a symbolic link.
func (r *rootFS) Symlink(p, target string) error {
	return r.put(p, &entry{typ: tar.TypeSymlink, mode: 0o777, link: target})
}

// Copy adds src (a file or symlink of the host, not followed) at p.
func (r *rootFS) Copy(p, src string) error {
	fi, err := os.Lstat(src)
	if err != nil {
		return err
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		return r.Symlink(p, target)
	case fi.Mode().IsRegular():
		data, err := os.ReadFile(src)
		if err != nil {
			return err
		}
		return r.File(p, fi.Mode().Perm(), data)
	case fi.IsDir():
		return r.Dir(p, fi.Mode().Perm())
	default:
		return fmt.Errorf("%s: unsupported file type %v", src, fi.Mode().Type())
	}
}

// CopyTree adds every file under srcDir at dst, skipping what skip returns
// true for (given the path relative to srcDir; a skipped folder is skipped
// whole).
func (r *rootFS) CopyTree(dst, srcDir string, skip func(rel string, d fs.DirEntry) bool) error {
	return walkSorted(srcDir, "", func(rel string, d fs.DirEntry) (bool, error) {
		if skip != nil && skip(rel, d) {
			return false, nil
		}
		return true, r.Copy(path.Join(dst, rel), path.Join(srcDir, rel))
	})
}

// walkSorted visits srcDir/rel's children in name order, depth first;
// visit returns whether to descend into a folder.
func walkSorted(srcDir, rel string, visit func(rel string, d fs.DirEntry) (bool, error)) error {
	des, err := os.ReadDir(path.Join(srcDir, rel)) // sorted by name
	if err != nil {
		return err
	}
	for _, d := range des {
		child := path.Join(rel, d.Name())
		descend, err := visit(child, d)
		if err != nil {
			return err
		}
		if descend && d.IsDir() {
			if err := walkSorted(srcDir, child, visit); err != nil {
				return err
			}
		}
	}
	return nil
}

func tarMode(m fs.FileMode) int64 {
	mode := int64(m.Perm())
	if m&fs.ModeSticky != 0 {
		mode |= 0o1000
	}
	if m&fs.ModeSetgid != 0 {
		mode |= 0o2000
	}
	if m&fs.ModeSetuid != 0 {
		mode |= 0o4000
	}
	return mode
}

// epoch is every entry's modification time: a layer's bytes must not depend
// on when its files were extracted.
var epoch = time.Unix(0, 0).UTC()

// Tar writes the tree as an uncompressed layer: entries sorted by path
// (parents first), owned by the recipe's uid/gid, stamped with epoch. An
// uncompressed layer's digest depends on nothing but this function — no
// compressor version can move it.
func (r *rootFS) Tar(w io.Writer) error {
	names := make([]string, 0, len(r.entries))
	for name := range r.entries {
		names = append(names, name)
	}
	sort.Strings(names) // "a" < "a/b": a folder comes before its children
	tw := tar.NewWriter(w)
	for _, name := range names {
		e := r.entries[name]
		h := &tar.Header{
			Typeflag: e.typ,
			Name:     name,
			Mode:     e.mode,
			Uid:      e.uid,
			Gid:      e.gid,
			ModTime:  epoch,
			Format:   tar.FormatPAX,
		}
		switch e.typ {
		case tar.TypeDir:
			h.Name += "/"
		case tar.TypeReg:
			h.Size = int64(len(e.data))
		case tar.TypeSymlink:
			h.Linkname = e.link
		}
		if err := tw.WriteHeader(h); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if e.typ == tar.TypeReg {
			if _, err := tw.Write(e.data); err != nil {
				return fmt.Errorf("%s: %w", name, err)
			}
		}
	}
	return tw.Close()
}

// Bytes returns the layer's bytes.
func (r *rootFS) Bytes() ([]byte, error) {
	var b bytes.Buffer
	if err := r.Tar(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
