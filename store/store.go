// Package store is expsync's content-addressed store: blobs by sha256, Git
// trees exported as manifests by tree ID, and the run cache (every finished
// run's result by run ID).
//
// The Store interface is what the runner, the executors and the reconcile
// loop use, so an object-storage implementation can replace the local folder
// later. Local is the folder implementation:
//
//	<root>/sha256/<aa>/<hex>        blobs, read-only, written via temp+rename
//	<root>/trees/<treeid>.json      tree manifests (see Manifest)
//	<root>/gitblobs/<aa>/<blobid>   Git blob ID -> "sha256 size" (so re-exports skip unchanged files; an object of another size is read again)
//	<root>/runs/files.journal       the run cache: result.json and files the caller adds,
//	                                appended as records (see runJournal); stores written
//	                                before it hold runs/<aa>/<runID>.<name>, still read
//	<root>/locks/runs.lock          per-run locks (one byte each), held while a run executes
//	<root>/tmp/                     temp files, same file system as the rest
//	<root>/work/                    the runner's attempt folders by default
//
// Every object is hashed as it is written and renamed into place under its
// digest, so a crash of the writing process never leaves a wrong object.
// Writes are not fsynced (a trivial run would pay more for it than for
// everything else): after a power loss the newest objects may be missing or
// truncated; readers that rehash (Materialise, expsync verify) notice.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package store

import (
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
)

// Object names one blob.
type Object struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// Store is a content-addressed store with a run cache. Implementations are
// safe for concurrent use by goroutines and by processes sharing the store.
type Store interface {
	// Put stores r's bytes and returns their digest and size. When want is
	// not empty and the bytes hash differently, nothing is stored and the
	// error is a *MismatchError.
	Put(ctx context.Context, r io.Reader, want string) (Object, error)
	// Open reads a blob; ErrNotFound when absent.
	Open(ctx context.Context, sha256 string) (io.ReadCloser, error)
	// Has reports whether a blob is present.
	Has(ctx context.Context, sha256 string) (bool, error)

	// PutTree records a tree manifest under its Git tree ID.
	PutTree(ctx context.Context, treeID string, m Manifest) error
	// Tree reads a tree manifest; ErrNotFound when absent.
	Tree(ctx context.Context, treeID string) (Manifest, error)

	// PutRunFile stores one file of a run's cache entry (result.json, and
	// whatever else the results folder needs: run.json, an envelope...).
	PutRunFile(ctx context.Context, runID, name string, data []byte) error
	// RunFile reads one file of a run's cache entry; ErrNotFound when absent.
	RunFile(ctx context.Context, runID, name string) ([]byte, error)
	// LockRun takes the run's exclusive lock across processes, waiting until
	// it is free or ctx ends. A lock whose holder died is free. Callers
	// re-check the cache after taking it.
	LockRun(ctx context.Context, runID string) (unlock func() error, err error)
}

// Linker is implemented by stores on the local file system: it places a
// blob at dst as cheaply as it can, with the given permission bits. linked
// reports a hard link to the store's read-only object: the caller must
// check that nothing wrote to it, and Drop the object if something did.
type Linker interface {
	LinkTo(ctx context.Context, sha256, dst string, executable bool) (linked bool, err error)
	// Drop removes an object whose bytes were changed behind the store's
	// back, so nothing uses them under the old digest.
	Drop(sha256 string)
}

// FilePutter is implemented by stores that can take a file by moving it
// (a hard link) instead of copying its bytes; the file must not change
// afterwards (its writer is gone, and it becomes read-only).
type FilePutter interface {
	PutFile(ctx context.Context, path string, limit int64) (Object, error)
}

// ErrNotFound is wrapped by errors for absent blobs, trees and run files.
var ErrNotFound = errors.New("not found in the store")

// MismatchError reports bytes whose digest differs from the expected one.
type MismatchError struct {
	Want, Got string
}

func (e *MismatchError) Error() string {
	return fmt.Sprintf("sha256 mismatch: expected %s, got %s", e.Want, e.Got)
}

var (
	sha256Pattern  = regexp.MustCompile(`^[0-9a-f]{64}$`)
	gitIDPattern   = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	runIDPattern   = regexp.MustCompile(`^[0-9a-f]{16,64}$`)
	runFilePattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)
)

// ValidSHA256 reports whether s is a lowercase hex sha256.
func ValidSHA256(s string) bool { return sha256Pattern.MatchString(s) }

func checkSHA256(s string) error {
	if !ValidSHA256(s) {
		return fmt.Errorf("invalid sha256 %q: want 64 lowercase hex characters", s)
	}
	return nil
}

func checkRunID(s string) error {
	if !runIDPattern.MatchString(s) {
		return fmt.Errorf("invalid run ID %q: want 16 to 64 lowercase hex characters", s)
	}
	return nil
}
