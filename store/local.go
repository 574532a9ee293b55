package store

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
)

// Local is a Store in a folder of the local file system.
type Local struct {
	root string
	// small caches the bytes of small objects: materialising a context
	// then costs one create per file instead of an open, a read and a
	// create. Objects are immutable, so the cache is never stale.
	small smallCache
	// noClone is set once FICLONE failed: the file system cannot clone.
	noClone atomic.Bool
	// noTmpfile is set once an O_TMPFILE write could not be done.
	noTmpfile atomic.Bool
	// trees caches parsed manifests: a tree ID names one manifest forever.
	trees sync.Map
	// runs is the run cache (runs/files.journal).
	runs *runJournal
	// verified maps the objects Verify rehashed to the identity of the
	// file it read (objectStamp): each is rehashed once per process.
	verified sync.Map
	// verifying holds a mutex per object being rehashed.
	verifying sync.Map
}

// smallMax is the largest object kept in memory (by Put and the cache).
const smallMax = 64 << 10

type smallCache struct {
	mu    sync.Mutex
	m     map[string][]byte
	bytes int
}

const smallCacheBytes = 32 << 20

func (c *smallCache) get(sha string) ([]byte, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, ok := c.m[sha]
	return b, ok
}

func (c *smallCache) drop(sha string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if b, ok := c.m[sha]; ok {
		c.bytes -= len(b)
		delete(c.m, sha)
	}
}

func (c *smallCache) add(sha string, b []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil || c.bytes+len(b) > smallCacheBytes {
		// Bounded and simple: start over rather than track recency.
		c.m, c.bytes = map[string][]byte{}, 0
	}
	if _, ok := c.m[sha]; !ok {
		c.m[sha] = b
		c.bytes += len(b)
	}
}

var _ Store = (*Local)(nil)
var _ Linker = (*Local)(nil)
var _ FilePutter = (*Local)(nil)

// OpenLocal opens (creating when needed) a store rooted at dir.
func OpenLocal(dir string) (*Local, error) {
	abs, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("store %s: %w", dir, err)
	}
	for _, sub := range []string{"sha256", "trees", "gitblobs", "runs", "locks", "tmp"} {
		if err := os.MkdirAll(filepath.Join(abs, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create store folder: %w", err)
		}
	}
	return &Local{root: abs, runs: &runJournal{path: filepath.Join(abs, "runs", "files.journal")}}, nil
}

// Open opens the store a contract names: "file:///path" or a plain path.
// Other schemes (s3://...) are not implemented yet and say so.
func Open(location string) (*Local, error) {
	switch {
	case location == "":
		return nil, errors.New("no store location: set the contract's store or --store")
	case strings.HasPrefix(location, "file://"):
		return OpenLocal(strings.TrimPrefix(location, "file://"))
	case strings.Contains(location, "://"):
		return nil, fmt.Errorf("store %q: only file:// stores are implemented", location)
	default:
		return OpenLocal(location)
	}
}

// Root returns the store's folder.
func (s *Local) Root() string { return s.root }

// ObjectPath returns where a blob lives (whether or not it is present), so
// callers on this machine can copy or link it without reading it through Go.
func (s *Local) ObjectPath(sha string) string {
	return filepath.Join(s.root, "sha256", sha[:2], sha)
}

// Put implements Store. Small contents are hashed in memory and written
// once; larger ones stream through a temp file.
func (s *Local) Put(ctx context.Context, r io.Reader, want string) (Object, error) {
	if want != "" {
		if err := checkSHA256(want); err != nil {
			return Object{}, err
		}
		// Already present: the name was verified when it was written.
		if fi, err := os.Lstat(s.ObjectPath(want)); err == nil {
			return Object{SHA256: want, Size: fi.Size()}, nil
		}
	}
	buf := make([]byte, smallMax+1)
	n, err := io.ReadFull(ctxReader{ctx, r}, buf)
	switch {
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return s.putSmall(buf[:n], want)
	case err != nil:
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	return s.putStream(ctx, io.MultiReader(bytes.NewReader(buf[:n]), r), want)
}

// PutBytes stores a byte slice.
func (s *Local) PutBytes(ctx context.Context, b []byte) (Object, error) {
	if len(b) <= smallMax {
		return s.putSmall(b, "")
	}
	return s.putStream(ctx, bytes.NewReader(b), "")
}

func (s *Local) putSmall(data []byte, want string) (Object, error) {
	sum := sha256.Sum256(data)
	got := hex.EncodeToString(sum[:])
	if want != "" && got != want {
		return Object{}, &MismatchError{Want: want, Got: got}
	}
	obj := Object{SHA256: got, Size: int64(len(data))}
	if s.intact(got, data) {
		return obj, nil
	}
	tmp, f, err := s.createTemp(0o444)
	if err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.rename(tmp, s.ObjectPath(got))
	}
	if err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	s.small.add(got, append([]byte(nil), data...))
	return obj, nil
}

func (s *Local) putStream(ctx context.Context, r io.Reader, want string) (Object, error) {
	tmp, f, err := s.createTemp(0o444)
	if err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	defer os.Remove(tmp) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), ctxReader{ctx, r})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return Object{}, &MismatchError{Want: want, Got: got}
	}
	dst := s.ObjectPath(got)
	if fi, err := os.Lstat(dst); err == nil && fi.Size() == n {
		return Object{SHA256: got, Size: n}, nil
	}
	// Absent, or changed behind the store's back: (re)place it.
	if err := s.rename(tmp, dst); err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	return Object{SHA256: got, Size: n}, nil
}

// createTemp creates a uniquely named file under tmp/ with its final
// permission bits (a read-only mode does not stop this descriptor writing).
func (s *Local) createTemp(mode os.FileMode) (string, *os.File, error) {
	var b [12]byte
	for {
		_, _ = rand.Read(b[:])
		name := filepath.Join(s.root, "tmp", hex.EncodeToString(b[:]))
		f, err := os.OpenFile(name, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if errors.Is(err, fs.ErrExist) {
			continue
		}
		return name, f, err
	}
}

// rename moves a temp file into place, creating the parent on first use.
func (s *Local) rename(tmp, dst string) error {
	err := os.Rename(tmp, dst)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
			return err
		}
		err = os.Rename(tmp, dst)
	}
	return err
}

// Open implements Store.
func (s *Local) Open(_ context.Context, sha string) (io.ReadCloser, error) {
	if err := checkSHA256(sha); err != nil {
		return nil, err
	}
	f, err := os.Open(s.ObjectPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	return f, err
}

// Has implements Store.
func (s *Local) Has(_ context.Context, sha string) (bool, error) {
	if err := checkSHA256(sha); err != nil {
		return false, err
	}
	_, err := os.Lstat(s.ObjectPath(sha))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

// LinkTo implements Linker. Plain files are hard-linked to the read-only
// object (no inode to allocate: by far the cheapest way to build a work
// folder), executables are copied (a link would share the object's
// permission bits), and so is everything when linking fails (another file
// system). Small objects are copied from memory, larger ones cloned
// copy-on-write where the file system can.
//
// Read-only objects stop accidental writes except by root (and an owner
// who chmods them); the runner detects writes after the fact (the object's
// mtime or size moves, small files are rehashed) and repairs or drops the
// object. Copying small files instead of linking them would close that
// door, but costs about ten times a link here (BenchmarkLinkToSmall).
func (s *Local) LinkTo(_ context.Context, sha, dst string, executable bool) (bool, error) {
	if err := checkSHA256(sha); err != nil {
		return false, err
	}
	src := s.ObjectPath(sha)
	if !executable {
		err := os.Link(src, dst)
		if err == nil {
			return true, nil
		}
		if errors.Is(err, fs.ErrNotExist) {
			if _, serr := os.Lstat(src); serr != nil {
				return false, fmt.Errorf("blob %s: %w", sha, ErrNotFound)
			}
		}
	}
	mode := os.FileMode(0o644)
	if executable {
		mode = 0o755
	}
	if data, ok := s.small.get(sha); ok {
		return false, writeNew(dst, data, mode)
	}
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return false, fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return false, err
	}
	if fi.Size() <= smallMax {
		data, err := os.ReadFile(src)
		if err != nil {
			return false, err
		}
		if contract.SHA256Hex(data) != sha {
			// Written to through a link: useless under this name. Removing
			// it lets the next export of its tree store it again.
			_ = os.Remove(src)
			return false, fmt.Errorf("blob %s was changed behind the store's back and is removed: %w", sha, ErrNotFound)
		}
		s.small.add(sha, data)
		return false, writeNew(dst, data, mode)
	}
	return false, s.copyFile(src, dst, mode)
}

// Drop implements Linker: an object whose original bytes are still in
// memory (small objects) is rewritten from them, so results and trees that
// refer to it keep working; any other is removed (re-exporting a tree or
// storing the same bytes again restores it).
func (s *Local) Drop(sha string) {
	if !ValidSHA256(sha) {
		return
	}
	if data, ok := s.small.get(sha); ok && contract.SHA256Hex(data) == sha {
		// A new inode replaces the one the run wrote through.
		if tmp, f, err := s.createTemp(0o444); err == nil {
			_, werr := f.Write(data)
			if cerr := f.Close(); werr == nil && cerr == nil && s.rename(tmp, s.ObjectPath(sha)) == nil {
				return
			}
			_ = os.Remove(tmp)
		}
	}
	_ = os.Remove(s.ObjectPath(sha))
	s.small.drop(sha)
}

// intact reports whether the object sha is present with exactly data's
// bytes (small objects only): a present object may have been written to
// through a hard link by a run running as root.
func (s *Local) intact(sha string, data []byte) bool {
	f, err := os.Open(s.ObjectPath(sha))
	if err != nil {
		return false
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || fi.Size() != int64(len(data)) {
		return false
	}
	buf := make([]byte, len(data)+1)
	n, err := io.ReadFull(f, buf)
	if err != io.ErrUnexpectedEOF && !(err == io.EOF && len(data) == 0) {
		return false
	}
	return bytes.Equal(buf[:n], data)
}

// PutFile implements FilePutter: it hashes the file (refusing more than
// limit bytes when limit > 0) and hard-links it into the store, making it
// read-only; it copies when linking fails.
func (s *Local) PutFile(ctx context.Context, path string, limit int64) (Object, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|unix.O_NOFOLLOW, 0)
	if err != nil {
		return Object{}, err
	}
	defer f.Close()
	h := sha256.New()
	var r io.Reader = ctxReader{ctx, f}
	if limit > 0 {
		r = io.LimitReader(r, limit+1)
	}
	n, err := io.Copy(h, r)
	if err != nil {
		return Object{}, err
	}
	if limit > 0 && n > limit {
		return Object{}, fmt.Errorf("%s: %w", path, ErrTooLarge)
	}
	obj := Object{SHA256: hex.EncodeToString(h.Sum(nil)), Size: n}
	dst := s.ObjectPath(obj.SHA256)
	if fi, err := os.Lstat(dst); err == nil && fi.Size() == n {
		return obj, nil
	}
	var b [12]byte
	_, _ = rand.Read(b[:])
	tmp := filepath.Join(s.root, "tmp", hex.EncodeToString(b[:]))
	// Only a file with no other name may become an object: a second name
	// (outside the work folder, say) could change it later.
	fi, err := f.Stat()
	if err != nil {
		return Object{}, err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || st.Nlink != 1 {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Object{}, err
		}
		return s.putStream(ctx, f, obj.SHA256)
	}
	if err := os.Link(path, tmp); err != nil {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			return Object{}, err
		}
		return s.putStream(ctx, f, obj.SHA256)
	}
	defer os.Remove(tmp) // no-op after the rename
	if err := os.Chmod(tmp, 0o444); err != nil {
		return Object{}, err
	}
	if err := s.rename(tmp, dst); err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	return obj, nil
}

// ErrTooLarge is wrapped by PutFile for files over its limit.
var ErrTooLarge = errors.New("file exceeds the size limit")

func writeNew(dst string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

func (s *Local) copyFile(src, dst string, mode os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if !s.noClone.Load() {
		// A copy-on-write clone costs no data copy where the file system can.
		if platform.CloneFile(out, in) == nil {
			return out.Close()
		}
		s.noClone.Store(true)
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeAtomic writes data to path so that readers see either nothing (or
// the previous file) or all of data, never part of it.
func (s *Local) writeAtomic(path string, data []byte, mode os.FileMode) error {
	if done, err := s.writeUnnamed(path, data, mode); done {
		return err
	}
	return s.writeViaTemp(path, data, mode)
}

// writeUnnamed writes data to an unnamed file linked in under path once
// complete (platform.WriteUnnamed: O_TMPFILE on Linux). done is false when
// the caller must fall back to a named temp file and a rename; a file
// system that cannot is remembered.
func (s *Local) writeUnnamed(path string, data []byte, mode os.FileMode) (done bool, err error) {
	if s.noTmpfile.Load() {
		return false, nil
	}
	done, unsupported, err := platform.WriteUnnamed(path, filepath.Dir(path), data, mode)
	if unsupported {
		s.noTmpfile.Store(true)
	}
	return done, err
}

// writeViaTemp writes data to a temp file under tmp/ and renames it to path.
func (s *Local) writeViaTemp(path string, data []byte, mode os.FileMode) error {
	tmp, f, err := s.createTemp(mode)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = s.rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
	}
	return err
}

// PutTree implements Store.
func (s *Local) PutTree(_ context.Context, treeID string, m Manifest) error {
	if !gitIDPattern.MatchString(treeID) {
		return fmt.Errorf("invalid Git tree ID %q", treeID)
	}
	data, err := m.Marshal()
	if err != nil {
		return err
	}
	if err := s.writeAtomic(filepath.Join(s.root, "trees", treeID+".json"), data, 0o444); err != nil {
		return fmt.Errorf("store tree %s: %w", treeID, err)
	}
	s.trees.Store(treeID, m)
	return nil
}

// Tree implements Store.
func (s *Local) Tree(_ context.Context, treeID string) (Manifest, error) {
	if !gitIDPattern.MatchString(treeID) {
		return Manifest{}, fmt.Errorf("invalid Git tree ID %q", treeID)
	}
	if m, ok := s.trees.Load(treeID); ok {
		return m.(Manifest), nil
	}
	data, err := os.ReadFile(filepath.Join(s.root, "trees", treeID+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return Manifest{}, fmt.Errorf("tree %s: %w", treeID, ErrNotFound)
	}
	if err != nil {
		return Manifest{}, err
	}
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return Manifest{}, fmt.Errorf("tree %s: corrupt manifest: %w", treeID, err)
	}
	s.trees.Store(treeID, m)
	return m, nil
}

// gitBlobSHA256 returns the sha256 and size recorded for a Git blob ID, if
// any (size -1 when an older expsync recorded the digest alone).
func (s *Local) gitBlobSHA256(blob string) (sha string, size int64, ok bool) {
	if !gitIDPattern.MatchString(blob) {
		return "", 0, false
	}
	b, err := os.ReadFile(filepath.Join(s.root, "gitblobs", blob[:2], blob))
	if err != nil {
		return "", 0, false
	}
	sha, sizeText, hasSize := strings.Cut(string(b), " ")
	size = -1
	if hasSize {
		if size, err = strconv.ParseInt(sizeText, 10, 64); err != nil || size < 0 {
			return "", 0, false
		}
	}
	if !ValidSHA256(sha) {
		return "", 0, false
	}
	if ok, _ := s.Has(context.Background(), sha); !ok {
		return "", 0, false
	}
	return sha, size, true
}

// putGitBlobSHA256 records a Git blob's sha256 and size: "<sha256> <size>".
func (s *Local) putGitBlobSHA256(blob, sha string, size int64) {
	if !gitIDPattern.MatchString(blob) {
		return
	}
	_ = s.writeAtomic(filepath.Join(s.root, "gitblobs", blob[:2], blob), []byte(sha+" "+strconv.FormatInt(size, 10)), 0o444)
}

// PutRunFile implements Store: it appends the file to the run journal.
func (s *Local) PutRunFile(_ context.Context, runID, name string, data []byte) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	if !runFilePattern.MatchString(name) {
		return fmt.Errorf("invalid run file name %q", name)
	}
	if err := s.runs.append(runID, name, data); err != nil {
		return fmt.Errorf("store run %s file %s in %s: %w", runID, name, s.runs.path, err)
	}
	return nil
}

// RunFile implements Store: the newest journal record of the file.
func (s *Local) RunFile(_ context.Context, runID, name string) ([]byte, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	if !runFilePattern.MatchString(name) {
		return nil, fmt.Errorf("invalid run file name %q", name)
	}
	data, ok, err := s.runs.lookup(runID, name)
	if err != nil {
		return nil, fmt.Errorf("run %s file %s: %w", runID, name, err)
	}
	if !ok {
		return nil, fmt.Errorf("run %s file %s: %w", runID, name, ErrNotFound)
	}
	return data, nil
}

// LockRun implements Store with an open file description lock (fcntl
// F_OFD_SETLK) on one byte of locks/runs.lock chosen by the run ID: no file
// per run, exclusive between processes and between goroutines (each call
// opens its own description), and released by the kernel when its holder
// dies, so a crashed run never blocks others. Where there are no such
// locks (not Linux), a file per run locked with flock does the same.
func (s *Local) LockRun(ctx context.Context, runID string) (func() error, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.root, "locks", "runs.lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run %s: %w", runID, err)
	}
	offset, _ := strconv.ParseInt(runID[:15], 16, 64) // 60 bits: never negative
	wait := time.Millisecond
	for {
		locked, err := platform.TryLockByte(f, offset)
		if errors.Is(err, platform.ErrUnsupported) {
			f.Close()
			return s.lockRunFile(ctx, runID)
		}
		if err != nil {
			f.Close()
			return nil, fmt.Errorf("lock run %s: %w", runID, err)
		}
		if locked {
			break
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock run %s: %w", runID, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
	return func() error {
		// Closing the description releases its lock.
		return f.Close()
	}, nil
}

type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

var osLstat = os.Lstat
