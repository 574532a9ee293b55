package store

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Local is a Store in a folder of the local file system.
type Local struct {
	root string
}

var _ Store = (*Local)(nil)
var _ Linker = (*Local)(nil)

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
	return &Local{root: abs}, nil
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

// Put implements Store.
func (s *Local) Put(ctx context.Context, r io.Reader, want string) (Object, error) {
	if want != "" {
		if err := checkSHA256(want); err != nil {
			return Object{}, err
		}
		// Already present: drain nothing, trust the verified name.
		if ok, _ := s.Has(ctx, want); ok {
			if fi, err := os.Stat(s.ObjectPath(want)); err == nil {
				return Object{SHA256: want, Size: fi.Size()}, nil
			}
		}
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "put-*")
	if err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after the rename
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(tmp, h), ctxReader{ctx, r})
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return Object{}, fmt.Errorf("store put: %w", err)
	}
	got := hex.EncodeToString(h.Sum(nil))
	if want != "" && got != want {
		return Object{}, &MismatchError{Want: want, Got: got}
	}
	if err := s.commit(tmp.Name(), got); err != nil {
		return Object{}, err
	}
	return Object{SHA256: got, Size: n}, nil
}

// PutBytes stores a small byte slice.
func (s *Local) PutBytes(ctx context.Context, b []byte) (Object, error) {
	return s.Put(ctx, bytes.NewReader(b), "")
}

// commit moves a verified temp file to its object path, read-only. An
// existing object wins: it has the same bytes.
func (s *Local) commit(tmp, sha string) error {
	dst := s.ObjectPath(sha)
	if _, err := os.Lstat(dst); err == nil {
		return nil
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return fmt.Errorf("store put: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("store put: %w", err)
	}
	if err := os.Rename(tmp, dst); err != nil {
		return fmt.Errorf("store put: %w", err)
	}
	return nil
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

// LinkTo implements Linker. A run must never be able to change the store
// through its work folder, so: a copy-on-write clone (FICLONE) where the
// file system offers it; otherwise a copy for files under LinkThreshold and
// for executables (a link would share the object's permission bits); a hard
// link to the read-only object for larger files, except when running as
// root, who can write read-only files.
func (s *Local) LinkTo(_ context.Context, sha, dst string, executable bool) error {
	if err := checkSHA256(sha); err != nil {
		return err
	}
	src := s.ObjectPath(sha)
	fi, err := os.Lstat(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return err
	}
	if !executable && fi.Size() >= LinkThreshold && os.Geteuid() != 0 {
		if err := os.Link(src, dst); err == nil {
			return nil
		}
	}
	mode := os.FileMode(0o644)
	if executable {
		mode = 0o755
	}
	return copyFile(src, dst, mode, sha)
}

// LinkThreshold is the size from which LinkTo hard-links instead of copying.
const LinkThreshold = 1 << 20

func copyFile(src, dst string, mode os.FileMode, sha string) error {
	in, err := os.Open(src)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("blob %s: %w", sha, ErrNotFound)
	}
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	// A copy-on-write clone costs no data copy where the file system can.
	if unix.IoctlFileClone(int(out.Fd()), int(in.Fd())) == nil {
		return out.Close()
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

// writeAtomic writes data to path via a temp file and rename.
func (s *Local) writeAtomic(path string, data []byte, mode os.FileMode) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Join(s.root, "tmp"), "w-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
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
	return nil
}

// Tree implements Store.
func (s *Local) Tree(_ context.Context, treeID string) (Manifest, error) {
	if !gitIDPattern.MatchString(treeID) {
		return Manifest{}, fmt.Errorf("invalid Git tree ID %q", treeID)
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
	return m, nil
}

func (s *Local) hasTree(treeID string) bool {
	_, err := os.Lstat(filepath.Join(s.root, "trees", treeID+".json"))
	return err == nil
}

// gitBlobSHA256 returns the sha256 recorded for a Git blob ID, if any.
func (s *Local) gitBlobSHA256(blob string) (string, bool) {
	if !gitIDPattern.MatchString(blob) {
		return "", false
	}
	b, err := os.ReadFile(filepath.Join(s.root, "gitblobs", blob[:2], blob))
	if err != nil || !ValidSHA256(string(b)) {
		return "", false
	}
	if ok, _ := s.Has(context.Background(), string(b)); !ok {
		return "", false
	}
	return string(b), true
}

func (s *Local) putGitBlobSHA256(blob, sha string) {
	if !gitIDPattern.MatchString(blob) {
		return
	}
	_ = s.writeAtomic(filepath.Join(s.root, "gitblobs", blob[:2], blob), []byte(sha), 0o444)
}

// PutRunFile implements Store.
func (s *Local) PutRunFile(_ context.Context, runID, name string, data []byte) error {
	if err := checkRunID(runID); err != nil {
		return err
	}
	if !runFilePattern.MatchString(name) {
		return fmt.Errorf("invalid run file name %q", name)
	}
	if err := s.writeAtomic(filepath.Join(s.root, "runs", runID, name), data, 0o644); err != nil {
		return fmt.Errorf("store run %s file %s: %w", runID, name, err)
	}
	return nil
}

// RunFile implements Store.
func (s *Local) RunFile(_ context.Context, runID, name string) ([]byte, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	if !runFilePattern.MatchString(name) {
		return nil, fmt.Errorf("invalid run file name %q", name)
	}
	data, err := os.ReadFile(filepath.Join(s.root, "runs", runID, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("run %s file %s: %w", runID, name, ErrNotFound)
	}
	return data, err
}

// LockRun implements Store with flock(2) on locks/<runID>.lock. The kernel
// drops the lock when its holder dies, so a crashed run never blocks others.
func (s *Local) LockRun(ctx context.Context, runID string) (func() error, error) {
	if err := checkRunID(runID); err != nil {
		return nil, err
	}
	f, err := os.OpenFile(filepath.Join(s.root, "locks", runID+".lock"), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run %s: %w", runID, err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, unix.EWOULDBLOCK) && !errors.Is(err, unix.EINTR) {
			f.Close()
			return nil, fmt.Errorf("lock run %s: %w", runID, err)
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
		// Closing the descriptor releases the flock.
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
