package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/expsync/expsync/tree"
)

// MaxSubjectBytes bounds a subject file read from a snapshot to hash it
// (committed outputs are far smaller; larger ones live in the store).
const MaxSubjectBytes = 1 << 30

// folderSource is where a results folder's files are read from: the file
// system, or a snapshot of a repository. Names are slash paths relative to
// the folder; absent files give errors wrapping fs.ErrNotExist, and symlinks
// are refused, never followed.
type folderSource interface {
	read(name string, limit int64) ([]byte, error)
	hash(name string) (string, error)
	// files lists every file (and symlink) in the folder, recursively.
	files() ([]string, error)
}

// dirSource reads a folder on disk. A folder checked out from a pull
// request is hostile: every file is opened below the folder (os.Root: no
// symlink or ".." leads out of it), a symlink is refused rather than
// followed, and a file that is not a regular one (a FIFO, a device) is
// refused without waiting on it.
type dirSource struct{ dir string }

func (d dirSource) path(name string) string { return filepath.Join(d.dir, filepath.FromSlash(name)) }

func (d dirSource) read(name string, limit int64) ([]byte, error) {
	f, err := d.open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return readAllLimited(f, d.path(name), limit)
}

func (d dirSource) hash(name string) (string, error) {
	f, err := d.open(name)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return hashOpened(f, d.path(name))
}

// ReadFolderFile reads the file name (a slash path) of the results folder
// dir on disk the way verification does: below dir only, through no
// symlink, a regular file of at most limit bytes. Readers of a folder a
// pull request checked out use it so a symlink to a FIFO or to a file
// elsewhere is refused, not read.
func ReadFolderFile(dir, name string, limit int64) ([]byte, error) {
	return dirSource{dir: dir}.read(name, limit)
}

// open opens the folder's file name for reading: a regular file below the
// folder, reached through no symlink.
func (d dirSource) open(name string) (*os.File, error) {
	root, err := os.OpenRoot(d.dir)
	if err != nil {
		return nil, err
	}
	defer root.Close()
	// Every folder on the way is checked too: os.Root alone would follow
	// a symlink that stays inside the folder, and one that leads out
	// fails with a message that does not say why.
	rel := filepath.FromSlash(name)
	parts := strings.Split(name, "/")
	for i := 1; i <= len(parts); i++ { // from the top: the folders on the way, then the file
		p := filepath.Join(parts[:i]...)
		fi, err := root.Lstat(p)
		if err != nil {
			return nil, err
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symlink; symlinks are not followed", path.Join(parts[:i]...))
		}
	}
	return openRegular(func(flag int) (*os.File, error) { return root.OpenFile(rel, flag, 0) }, name)
}

func (d dirSource) files() ([]string, error) {
	var out []string
	err := filepath.WalkDir(d.dir, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if e.IsDir() {
			return nil
		}
		rel, err := filepath.Rel(d.dir, p)
		if err != nil {
			return err
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	return out, err
}

type treeSource struct {
	snap tree.Reader
	dir  string
}

func (t treeSource) read(name string, limit int64) ([]byte, error) {
	return t.snap.ReadFile(path.Join(t.dir, name), limit)
}

func (t treeSource) hash(name string) (string, error) {
	p := path.Join(t.dir, name)
	e, err := t.snap.Stat(p)
	if err != nil {
		return "", err
	}
	if e.Mode != tree.ModeFile && e.Mode != tree.ModeExecutable {
		return "", fmt.Errorf("%s is not a regular file (mode %o); symlinks are not followed", name, e.Mode)
	}
	data, err := t.snap.ReadFile(p, MaxSubjectBytes)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]), nil
}

func (t treeSource) files() ([]string, error) {
	var out []string
	var walk func(rel string) error
	walk = func(rel string) error {
		entries, err := t.snap.ReadDir(path.Join(t.dir, rel))
		if err != nil {
			return err
		}
		for _, e := range entries {
			name := path.Join(rel, e.Name)
			if e.IsDir() {
				if err := walk(name); err != nil {
					return err
				}
				continue
			}
			out = append(out, name)
		}
		return nil
	}
	return out, walk("")
}
