package gitsource

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-billy/v5/osfs"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/format/packfile"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Cache layout, per repository:
//
//	<cacheRoot>/<hash>/git       bare repository fetched into (dropped on corruption)
//	<cacheRoot>/<hash>/verified  commits that passed signature verification
//
// Fetched refs are stored as refs/expsync/<ref without "refs/">, so nothing
// in the cache is mistaken for a local branch.

const (
	// objectCacheBytes bounds go-git's decoded-object LRU per open storage.
	objectCacheBytes = 512 << 10
	// largeObjectBytes: blobs above this are streamed from the pack, not
	// loaded into memory.
	largeObjectBytes = 1 << 20
	// maxOpenPacks: pack files a storage keeps open between object reads.
	// Without it go-git opens the pack, and allocates a reader with its
	// buffers, for every object: reading 8,000 files made 190 MB of garbage
	// (a heap churning through 80 collections) and took 3x longer. A
	// storage is then not safe for concurrent reads: Snapshot serialises
	// them.
	maxOpenPacks = 4
)

func (s *Source) gitDir() string { return filepath.Join(s.dir, "git") }

// cacheRef is where a fetched remote ref is kept in the cache.
func cacheRef(ref string) plumbing.ReferenceName {
	return plumbing.ReferenceName("refs/expsync/" + strings.TrimPrefix(ref, "refs/"))
}

// openStorage opens (creating if needed) the cache repository. The caller
// must not keep it beyond one operation.
func (s *Source) openStorage() (*filesystem.Storage, error) {
	st, unpin, err := s.openStorageRoot(false)
	if err != nil {
		return nil, err
	}
	unpin()
	return st, nil
}

// openPinnedStorage is openStorage for a storage kept beyond the cache
// lock (a Snapshot): it names the cache folder through an open descriptor
// (/proc/self/fd/N), so it reads the same folder after dropCache renames
// it aside, where a storage opened on the path would read the new cache
// ("packfile not found" for every pack it had not kept open). unpin
// closes the descriptor once the storage is closed.
func (s *Source) openPinnedStorage() (st *filesystem.Storage, unpin func(), err error) {
	return s.openStorageRoot(true)
}

func (s *Source) openStorageRoot(pin bool) (*filesystem.Storage, func(), error) {
	dir := s.gitDir()
	_, statErr := os.Stat(filepath.Join(dir, "HEAD"))
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, nil, fmt.Errorf("create cache folder: %w", err)
	}
	fsys, unpin := osfs.New(dir), func() {}
	if pin {
		if f, err := os.Open(dir); err == nil {
			// Where /proc is missing (not Linux), the path it is. Bound:
			// osfs's default resolves the root's symbolic link, the path.
			if byFD := fmt.Sprintf("/proc/self/fd/%d", f.Fd()); isDir(byFD) {
				fsys, unpin = osfs.New(byFD, osfs.WithBoundOS()), func() { f.Close() }
			} else {
				f.Close()
			}
		}
	}
	st := filesystem.NewStorageWithOptions(fsys, cache.NewObjectLRU(objectCacheBytes),
		filesystem.Options{LargeObjectThreshold: largeObjectBytes, MaxOpenDescriptors: maxOpenPacks})
	if errors.Is(statErr, fs.ErrNotExist) {
		if _, err := git.Init(st, nil); err != nil && !errors.Is(err, git.ErrRepositoryAlreadyExists) {
			unpin()
			return nil, nil, fmt.Errorf("initialise cache repository: %w", err)
		}
	}
	return st, unpin, nil
}

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}

// dropCache removes the cache repository (not the verified set), for
// example after go-git found it inconsistent following a force-push. The
// folder is moved aside at once; it is deleted when no Snapshot reads it.
// The caller holds the cache lock.
func (s *Source) dropCache() error {
	s.stats.drops.Add(1)
	s.sweepTrash()
	dir := s.gitDir()
	if _, err := os.Lstat(dir); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	// Into a folder no one else uses: a process killed while a snapshot
	// read its dropped cache leaves that behind, and another Source on
	// the same folder has its own (a fixed name made every later drop fail
	// with "file exists").
	trash, err := os.MkdirTemp(s.dir, filepath.Base(dir)+".old-")
	if err != nil {
		return fmt.Errorf("drop cache: %w", err)
	}
	// Locked while it may be read: sweepTrash removes only folders
	// whose lock is free, left by a process that ended.
	lock, err := lockTrash(trash)
	if err != nil {
		os.Remove(trash)
		return fmt.Errorf("drop cache: %w", err)
	}
	if err := os.Rename(dir, filepath.Join(trash, filepath.Base(dir))); err != nil {
		lock.Close()
		os.Remove(trash)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return fmt.Errorf("drop cache: %w", err)
	}
	s.trashMu.Lock()
	defer s.trashMu.Unlock()
	s.trash = append(s.trash, trashDir{path: trash, lock: lock})
	if s.openSnapshots == 0 {
		return s.emptyTrashLocked()
	}
	return nil
}

// trashDir is a dropped cache waiting for the snapshots that read it.
type trashDir struct {
	path string
	lock *os.File // holds an flock on path while it is kept
}

func lockTrash(path string) (*os.File, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB); err != nil {
		f.Close()
		return nil, err
	}
	return f, nil
}

// sweepTrash deletes the dropped caches that no live process keeps: a
// process killed while a snapshot read its dropped cache left a whole
// copy of the cache behind. The caller holds the cache lock, so no other
// process is between creating a dropped folder and locking it.
func (s *Source) sweepTrash() {
	prefix := filepath.Base(s.gitDir()) + ".old-"
	entries, err := os.ReadDir(s.dir)
	if err != nil {
		return
	}
	s.trashMu.Lock()
	defer s.trashMu.Unlock()
	ours := map[string]bool{}
	for _, t := range s.trash {
		ours[t.path] = true
	}
	for _, e := range entries {
		path := filepath.Join(s.dir, e.Name())
		if !e.IsDir() || !strings.HasPrefix(e.Name(), prefix) || ours[path] {
			continue
		}
		f, err := os.Open(path)
		if err != nil {
			continue
		}
		if syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil {
			_ = os.RemoveAll(path) // best effort: tried again at the next drop
		}
		f.Close()
	}
}

func (s *Source) emptyTrashLocked() error {
	var first error
	for _, t := range s.trash {
		if err := os.RemoveAll(t.path); err != nil && first == nil {
			first = err
		}
		t.lock.Close()
	}
	s.trash = nil
	return first
}

func (s *Source) snapshotOpened() {
	s.trashMu.Lock()
	s.openSnapshots++
	s.trashMu.Unlock()
}

func (s *Source) snapshotClosed() {
	s.trashMu.Lock()
	defer s.trashMu.Unlock()
	s.openSnapshots--
	if s.openSnapshots == 0 {
		_ = s.emptyTrashLocked()
	}
}

// cacheBytes is the size of the cache repository on disk.
func (s *Source) cacheBytes() (int64, error) {
	var total int64
	err := filepath.WalkDir(s.gitDir(), func(_ string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() {
			info, err := d.Info()
			if err != nil {
				return err
			}
			total += info.Size()
		}
		return nil
	})
	return total, err
}

// isCorruption reports the errors go-git returns when a shallow cache no
// longer matches the server (typically after a force-push).
func isCorruption(err error) bool {
	if err == nil {
		return false
	}
	if errors.Is(err, plumbing.ErrObjectNotFound) || errors.Is(err, packfile.ErrMalformedPackFile) ||
		errors.Is(err, packfile.ErrReferenceDeltaNotFound) {
		return true
	}
	msg := err.Error()
	return strings.Contains(msg, "object not found") || strings.Contains(msg, "reference delta not found") ||
		strings.Contains(msg, "malformed pack") || strings.Contains(msg, "invalid checksum")
}
