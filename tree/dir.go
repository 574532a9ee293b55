package tree

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"syscall"
)

// Dir is a working folder read as Git would record it after `git add -A`:
// `.git` is skipped; what Git ignores is left out (.gitignore files at every
// level, those of the folders above the root inside its work tree,
// .git/info/exclude and the user's core.excludesFile), unless the Git index
// tracks it; symlinks are recorded as links (blob of the target) and never
// followed, a file is executable when its owner may execute it, empty
// folders and files that are neither regular nor symlinks do not exist.
// Outside a Git work tree the folder's .gitignore files still apply (they
// will once it is committed). A folder its enclosing work tree ignores is
// read as a repository of its own.
//
// A Dir caches what it lists; make a new one to see later changes.
type Dir struct {
	snapshot
	root *os.Root
	wt   workTree
	mu   sync.Mutex
	dirs map[string][]Entry
	// untracked are the files listed so far that are neither ignored nor
	// in the index (only when there is an index).
	untracked []string
}

// NewDir opens the folder at path. Close it when done.
func NewDir(path string) (*Dir, error) {
	root, err := os.OpenRoot(path)
	if err != nil {
		return nil, fmt.Errorf("open working folder: %w", err)
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		root.Close()
		return nil, fmt.Errorf("open working folder: %w", err)
	}
	// Git finds its work tree from the physical folder, not a symlink's
	// location.
	if real, err := filepath.EvalSymlinks(abs); err == nil {
		abs = real
	}
	d := &Dir{root: root, wt: findWorkTree(abs), dirs: map[string][]Entry{}}
	d.snapshot = snapshot{l: d}
	return d, nil
}

// Close releases the folder.
func (d *Dir) Close() error { return d.root.Close() }

func osPath(p string) string {
	if p == "" {
		return "."
	}
	return filepath.FromSlash(p)
}

func (d *Dir) listDir(dir string) ([]Entry, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if entries, ok := d.dirs[dir]; ok {
		return entries, nil
	}
	// Listing the root lists every folder it records, with the ignore
	// rules each inherits; a folder not listed then does not exist.
	if _, err := d.list("", d.childRules(dirRules{patterns: d.wt.patterns}, "", false)); err != nil {
		return nil, err
	}
	if entries, ok := d.dirs[dir]; ok {
		return entries, nil
	}
	return nil, &fs.PathError{Op: "readdir", Path: dir, Err: ErrNotExist}
}

// list lists folder dir, whose ignore rules are rules.
func (d *Dir) list(dir string, rules dirRules) ([]Entry, error) {
	if entries, ok := d.dirs[dir]; ok {
		return entries, nil
	}
	f, err := d.root.Open(osPath(dir))
	if err != nil {
		return nil, err
	}
	children, err := f.ReadDir(-1)
	f.Close()
	if err != nil {
		return nil, err
	}
	entries := make([]Entry, 0, len(children))
	for _, c := range children {
		if c.Name() == ".git" {
			continue
		}
		p := Join(dir, c.Name())
		// A symlink is a file to Git's ignore rules, even one to a folder.
		skip, ignored := d.skip(rules, p, c.IsDir())
		if skip {
			continue
		}
		e, ok, err := d.entry(p, c, rules, ignored)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		entries = append(entries, e)
		if !e.IsDir() && d.wt.tracked != nil && !d.wt.tracked[p] {
			d.untracked = append(d.untracked, p)
		}
	}
	SortEntries(entries)
	d.dirs[dir] = entries
	return entries, nil
}

// entry hashes one child of a folder with rules; ok is false for what Git
// would not record.
func (d *Dir) entry(p string, c fs.DirEntry, rules dirRules, ignored bool) (Entry, bool, error) {
	e := Entry{Name: c.Name()}
	switch t := c.Type(); {
	case t&fs.ModeSymlink != 0:
		target, err := d.root.Readlink(osPath(p))
		if err != nil {
			return e, false, err
		}
		e.Mode, e.Hash, e.Size = ModeSymlink, BlobID([]byte(filepath.ToSlash(target))), int64(len(target))
	case t.IsDir():
		sub, err := d.list(p, d.childRules(rules, p, ignored))
		if err != nil {
			return e, false, err
		}
		if len(sub) == 0 {
			return e, false, nil
		}
		e.Mode = ModeDir
		if e.Hash, err = TreeID(sub); err != nil {
			return e, false, err
		}
	case t.IsRegular():
		info, err := d.root.Lstat(osPath(p))
		if err != nil {
			return e, false, err
		}
		e.Mode, e.Size = ModeFile, info.Size()
		if info.Mode().Perm()&0o100 != 0 {
			e.Mode = ModeExecutable
		}
		if e.Hash, err = d.hashFile(p, info.Size()); err != nil {
			return e, false, err
		}
	default:
		return e, false, nil // sockets, devices, pipes: Git records none
	}
	return e, true, nil
}

func (d *Dir) hashFile(p string, size int64) (Hash, error) {
	f, err := d.openRegular(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return BlobIDReader(f, size)
}

// openRegular opens p without blocking (a file swapped for a named pipe
// after it was listed must not hang the reader) and checks it is still a
// regular file.
func (d *Dir) openRegular(p string) (*os.File, error) {
	f, err := d.root.OpenFile(osPath(p), os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	info, err := f.Stat()
	if err == nil && !info.Mode().IsRegular() {
		err = &fs.PathError{Op: "read", Path: p, Err: errors.New("changed from a regular file while reading; retry")}
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

func (d *Dir) readBlob(p string, e Entry, limit int64) ([]byte, error) {
	f, err := d.openRegular(p)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	max := e.Size
	if limit > 0 && limit < max {
		max = limit
	}
	data, err := io.ReadAll(io.LimitReader(f, max+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > max || BlobID(data) != e.Hash {
		return nil, &fs.PathError{Op: "read", Path: p, Err: errors.New("file changed while reading; retry")}
	}
	return data, nil
}
