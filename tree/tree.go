// Package tree reads files of one repository snapshot — a Git commit's tree,
// a working folder, or an in-memory tree in tests — and names every file and
// folder by the object ID Git itself would give it.
//
// Everything that decides a run's identity reads through a Reader, so the IDs
// computed from a working folder before a commit equal the IDs the controller
// computes from the commit.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package tree

import (
	"errors"
	"io/fs"
)

// Hash is a Git object ID in lowercase hex (SHA-1, 40 characters).
type Hash string

// Mode is a Git tree entry mode.
type Mode uint32

const (
	ModeFile       Mode = 0o100644
	ModeExecutable Mode = 0o100755
	ModeSymlink    Mode = 0o120000
	ModeDir        Mode = 0o040000
	ModeSubmodule  Mode = 0o160000
)

// Entry is one child of a folder, as a Git tree lists it.
type Entry struct {
	Name string
	Mode Mode
	Hash Hash // blob ID for files and symlinks, tree ID for folders
	Size int64
}

// IsDir reports whether the entry is a folder.
func (e Entry) IsDir() bool { return e.Mode == ModeDir }

// Reader reads one snapshot. Paths are slash-separated and relative to the
// snapshot's root; "" and "." name the root. A path that is absolute or
// contains ".." is refused with ErrEscapes. Symlinks are data: ReadFile of a
// symlink returns ErrSymlink, never the file it points to.
type Reader interface {
	// ReadFile returns a regular file's content. It refuses files larger than
	// limit bytes (limit <= 0 means no limit) with an error wrapping ErrTooLarge.
	ReadFile(path string, limit int64) ([]byte, error)
	// Stat returns the entry at path (for the root: Name "", Mode ModeDir).
	Stat(path string) (Entry, error)
	// ReadDir lists a folder's entries sorted as Git sorts tree entries.
	ReadDir(path string) ([]Entry, error)
}

var (
	// ErrNotExist is wrapped by errors for paths that are absent.
	ErrNotExist = fs.ErrNotExist
	// ErrEscapes is returned for paths that leave the root.
	ErrEscapes = errors.New("path escapes the repository root")
	// ErrSymlink is returned when a file is read through a symlink.
	ErrSymlink = errors.New("path is a symlink; symlinks are not followed")
	// ErrTooLarge is wrapped by ReadFile when a file exceeds its limit.
	ErrTooLarge = errors.New("file exceeds the size limit")
)
