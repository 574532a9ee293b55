package store

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Verifier is implemented by stores that can check an object's bytes
// against its name. Objects are verified when they are written; an object
// cut short or corrupted on disk afterwards (a power cut, a disk error) is
// only caught by reading it again.
type Verifier interface {
	// Verify checks that the object sha holds bytes with that digest. An
	// absent object wraps ErrNotFound; one whose bytes differ is dropped
	// (so storing the right bytes again restores it) and returns a
	// *MismatchError naming both digests.
	Verify(ctx context.Context, sha string) error
}

var _ Verifier = (*Local)(nil)

// objectStamp identifies the file an object had when it was verified: a
// file replaced, cut short or written since has another inode, size or
// modification time. (Hard links to it, which runs make, move only its
// change time.)
type objectStamp struct {
	dev, ino uint64
	size     int64
	mtime    time.Time
}

func stampOf(fi os.FileInfo) objectStamp {
	st := objectStamp{size: fi.Size(), mtime: fi.ModTime()}
	if sys, ok := fi.Sys().(*syscall.Stat_t); ok {
		st.dev, st.ino = uint64(sys.Dev), uint64(sys.Ino)
	}
	return st
}

// Verify implements Verifier. An object is rehashed once per process: the
// file's identity (device, inode, size, modification time) is remembered,
// and a later call rehashes only when it changed — a stat per call, so the
// check costs nothing per run while a long-running serve still catches an
// object that was truncated or replaced after it was verified. (Bytes
// flipped in place by the disk, keeping size and times, are caught by the
// first verification of each process only.)
func (s *Local) Verify(ctx context.Context, sha string) error {
	if err := checkSHA256(sha); err != nil {
		return err
	}
	path := s.ObjectPath(sha)
	fi, err := os.Lstat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if s.verifiedAs(sha, fi) {
		return nil
	}
	// Runs starting together that share a large input hash it once: the
	// others wait, then find it verified.
	mu, _ := s.verifying.LoadOrStore(sha, new(sync.Mutex))
	mu.(*sync.Mutex).Lock()
	defer mu.(*sync.Mutex).Unlock()
	if fi, err := os.Lstat(path); err == nil && s.verifiedAs(sha, fi) {
		return nil
	}
	got, stamp, err := hashObject(ctx, path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return fmt.Errorf("verify blob %s: %w", sha, err)
	}
	if got != sha {
		s.verified.Delete(sha)
		// Rewritten from memory when this process holds its bytes
		// (verified when they were cached), removed otherwise.
		s.Drop(sha)
		if again, stamp, err := hashObject(ctx, path); err == nil && again == sha {
			s.verified.Store(sha, stamp)
			return nil
		}
		return &MismatchError{Want: sha, Got: got}
	}
	s.verified.Store(sha, stamp)
	return nil
}

// verifiedAs reports whether sha was verified with the file fi describes.
func (s *Local) verifiedAs(sha string, fi os.FileInfo) bool {
	v, ok := s.verified.Load(sha)
	return ok && v.(objectStamp) == stampOf(fi)
}

// objectsHashed counts hashObject's calls: tests check that runs sharing
// an object hash it once.
var objectsHashed atomic.Int64

// hashObject hashes a file and returns the identity of the file it read.
func hashObject(ctx context.Context, path string) (string, objectStamp, error) {
	objectsHashed.Add(1)
	f, err := os.Open(path)
	if err != nil {
		return "", objectStamp{}, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return "", objectStamp{}, err
	}
	h := sha256.New()
	if _, err := io.Copy(h, ctxReader{ctx, f}); err != nil {
		return "", objectStamp{}, err
	}
	return hex.EncodeToString(h.Sum(nil)), stampOf(fi), nil
}
