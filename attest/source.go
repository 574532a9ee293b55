package attest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"path"
	"path/filepath"

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

type dirSource struct{ dir string }

func (d dirSource) path(name string) string { return filepath.Join(d.dir, filepath.FromSlash(name)) }

func (d dirSource) read(name string, limit int64) ([]byte, error) {
	return readLimited(d.path(name), limit)
}

func (d dirSource) hash(name string) (string, error) { return hashRegularFile(d.path(name)) }

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
