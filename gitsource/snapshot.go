package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
	"github.com/expsync/expsync/tree"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/storage/filesystem"
)

// Snapshot is one commit's tree, read from the cache without a work tree.
// It implements tree.Reader. Close it when done; it holds a few open files
// and a small object cache, nothing else.
type Snapshot struct {
	Repo   string    // redacted URL
	Ref    string    // full ref name the commit was fetched from
	Commit string    // commit ID
	Tree   tree.Hash // root tree ID
	Info   CommitInfo

	root     *object.Tree
	maxBytes int64
	release  func()
	// mu serialises every use of st (and trees): the storage keeps packs
	// open (maxOpenPacks) and go-git's pack readers are not safe for
	// concurrent use. Runs read one snapshot from several goroutines.
	mu    sync.Mutex
	st    *filesystem.Storage
	trees map[plumbing.Hash]*object.Tree // decoded folders, bounded
}

var errSnapshotClosed = errors.New("snapshot is closed")

// maxCachedTrees bounds the decoded folders a Snapshot keeps; walks read
// each folder once per file below it, so a few hundred cover most trees.
const maxCachedTrees = 256

func (sn *Snapshot) tree(h plumbing.Hash) (*object.Tree, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	if t, ok := sn.trees[h]; ok {
		return t, nil
	}
	obj, err := sn.objectLocked(plumbing.TreeObject, h)
	if err != nil {
		return nil, err
	}
	t, err := object.DecodeTree(sn.st, obj)
	if err != nil {
		return nil, err
	}
	if sn.trees == nil || len(sn.trees) >= maxCachedTrees {
		sn.trees = map[plumbing.Hash]*object.Tree{}
	}
	sn.trees[h] = t
	return t, nil
}

// object reads one object from the storage (see mu). Its reader may be
// used without the lock: a small object is in memory, a large one's reader
// opens the pack file itself.
func (sn *Snapshot) object(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	sn.mu.Lock()
	defer sn.mu.Unlock()
	return sn.objectLocked(t, h)
}

// packRetries bounds the lookups of one blob whose reader meets a removed
// pack: each needs a new merge (maxCachePacks fetches) in between.
const packRetries = 3

// objectLocked is object with sn.mu held. The storage listed the cache's
// packs when it was opened (or when it met one missing); a fetch since
// may have merged them into one and removed them (the merged pack holds
// every object). Then the packs are listed again, under the packs lock
// shared (internal/gitpack), so that no merge is replacing packs meanwhile: a
// listing taken while old packs were being removed failed midway, or
// left the storage with part of the indexes ("object not found").
func (sn *Snapshot) objectLocked(t plumbing.ObjectType, h plumbing.Hash) (plumbing.EncodedObject, error) {
	if sn.st == nil {
		return nil, errSnapshotClosed
	}
	obj, err := sn.st.EncodedObject(t, h)
	if err == nil || !(gitpack.Replaced(err) || errors.Is(err, plumbing.ErrObjectNotFound)) {
		return obj, err
	}
	unlock, lerr := gitpack.Lock(sn.st.Filesystem().Root(), syscall.LOCK_SH)
	if lerr != nil {
		return nil, err
	}
	defer unlock()
	sn.st.Reindex()
	return sn.st.EncodedObject(t, h)
}

// blobReader opens a blob's content. A blob over 16 KiB is read from its
// pack file opened by its reader, after object returned: when a merge
// removed that pack in between, the blob is looked up again.
func (sn *Snapshot) blobReader(h plumbing.Hash) (io.ReadCloser, error) {
	for attempt := 1; ; attempt++ {
		obj, err := sn.object(plumbing.BlobObject, h)
		if err != nil {
			return nil, err
		}
		r, err := obj.Reader()
		if err == nil || attempt == packRetries || !gitpack.Replaced(err) {
			return r, err
		}
		sn.mu.Lock()
		if sn.st != nil {
			sn.st.Reindex()
		}
		sn.mu.Unlock()
	}
}

// CommitInfo is the commit's metadata.
type CommitInfo struct {
	Author, Committer Signature
	Message           string
	Parents           []string
	Signed            bool
}

// Signature names a person and a time, as Git records them.
type Signature struct {
	Name, Email string
	When        time.Time
}

var _ tree.Reader = (*Snapshot)(nil)

// Snapshot fetches commit (the head of ref seen by Poll; "" for the ref's
// current head) shallowly into the cache and opens its tree.
func (s *Source) Snapshot(ctx context.Context, ref, commit string) (*Snapshot, error) {
	ctx, cancel := s.limits.withTimeout(ctx)
	defer cancel()
	if !strings.HasPrefix(ref, "refs/") {
		ref = "refs/heads/" + ref
	}
	op := "snapshot " + ref
	var want plumbing.Hash
	if commit != "" {
		if !plumbing.IsHash(commit) {
			return nil, s.newError(op, nil, "%q is not a commit ID", commit)
		}
		want = plumbing.NewHash(commit)
	}
	unlock, err := s.lockCache(ctx)
	if err != nil {
		return nil, s.wrap(op, err)
	}
	defer unlock()
	// Pinned: the snapshot reads this cache folder even after a drop.
	st, unpin, err := s.ensureCommitOpen(ctx, ref, want, 1)
	if err != nil {
		return nil, err
	}
	if want.IsZero() {
		r, err := st.Reference(cacheRef(ref))
		if err != nil {
			st.Close()
			unpin()
			return nil, s.wrap(op, err)
		}
		want = peel(st, r.Hash())
	}
	snap, err := openSnapshot(st, want, s.limits.MaxFileBytes)
	if err != nil {
		st.Close()
		unpin()
		return nil, s.wrap(op, err)
	}
	snap.Repo, snap.Ref = s.redacted, ref
	s.snapshotOpened()
	snap.release = func() { unpin(); s.snapshotClosed() }
	return snap, nil
}

func openSnapshot(st *filesystem.Storage, commit plumbing.Hash, maxBytes int64) (*Snapshot, error) {
	c, err := object.GetCommit(st, commit)
	if err != nil {
		return nil, fmt.Errorf("read commit %s: %w", commit, err)
	}
	root, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("read tree of commit %s: %w", commit, err)
	}
	info := CommitInfo{
		Author:    Signature{c.Author.Name, c.Author.Email, c.Author.When},
		Committer: Signature{c.Committer.Name, c.Committer.Email, c.Committer.When},
		Message:   c.Message,
		Signed:    c.PGPSignature != "",
	}
	for _, p := range c.ParentHashes {
		info.Parents = append(info.Parents, p.String())
	}
	return &Snapshot{Commit: commit.String(), Tree: tree.Hash(root.Hash.String()), Info: info,
		st: st, root: root, maxBytes: maxBytes}, nil
}

// Close releases the snapshot's files.
func (sn *Snapshot) Close() error {
	sn.mu.Lock()
	if sn.st == nil {
		sn.mu.Unlock()
		return nil
	}
	err := sn.st.Close()
	sn.st, sn.trees = nil, nil
	sn.mu.Unlock()
	if sn.release != nil {
		sn.release()
	}
	return err
}

// cleanPath checks a caller's path (tree.Clean) and splits it into segments.
func cleanPath(p string) ([]string, error) {
	c, err := tree.Clean(p)
	if err != nil || c == "" {
		return nil, err
	}
	return strings.Split(c, "/"), nil
}

// safeName refuses tree entries a hostile tree could use to escape a folder
// when the tree is written out (Git itself refuses to check them out).
func safeName(treeID plumbing.Hash, name string) error {
	if name == "" || name == "." || name == ".." || strings.ContainsAny(name, "/\x00\\") {
		return fmt.Errorf("tree %s has an unsafe entry name %q: %w", treeID, name, tree.ErrEscapes)
	}
	return nil
}

// lookup walks to the entry at segs. It returns the entry (Mode ModeDir for
// the root) and, for folders, the tree.
func (sn *Snapshot) lookup(p string) (tree.Entry, *object.Tree, error) {
	sn.mu.Lock()
	closed := sn.st == nil
	sn.mu.Unlock()
	if closed {
		return tree.Entry{}, nil, errSnapshotClosed
	}
	segs, err := cleanPath(p)
	if err != nil {
		return tree.Entry{}, nil, err
	}
	cur := sn.root
	entry := tree.Entry{Mode: tree.ModeDir, Hash: tree.Hash(cur.Hash.String())}
	for i, seg := range segs {
		if cur == nil {
			return tree.Entry{}, nil, fmt.Errorf("%q: %s is not a folder: %w", p, strings.Join(segs[:i], "/"), tree.ErrNotExist)
		}
		var found *object.TreeEntry
		for j := range cur.Entries {
			if cur.Entries[j].Name == seg {
				found = &cur.Entries[j]
				break
			}
		}
		if found == nil {
			return tree.Entry{}, nil, fmt.Errorf("%q in commit %s: %w", p, sn.Commit, tree.ErrNotExist)
		}
		if err := safeName(cur.Hash, found.Name); err != nil {
			return tree.Entry{}, nil, err
		}
		if found.Mode == filemode.Symlink && i < len(segs)-1 {
			return tree.Entry{}, nil, fmt.Errorf("%q: %s: %w", p, strings.Join(segs[:i+1], "/"), tree.ErrSymlink)
		}
		entry, err = sn.entry(*found)
		if err != nil {
			return tree.Entry{}, nil, err
		}
		cur = nil
		if found.Mode == filemode.Dir {
			cur, err = sn.tree(found.Hash)
			if err != nil {
				return tree.Entry{}, nil, fmt.Errorf("read tree %s at %q: %w", found.Hash, p, err)
			}
		}
	}
	return entry, cur, nil
}

func (sn *Snapshot) entry(e object.TreeEntry) (tree.Entry, error) {
	out := tree.Entry{Name: e.Name, Mode: tree.Mode(e.Mode), Hash: tree.Hash(e.Hash.String())}
	if e.Mode == filemode.Dir || e.Mode == filemode.Submodule {
		return out, nil
	}
	obj, err := sn.object(plumbing.BlobObject, e.Hash)
	if err != nil {
		return tree.Entry{}, fmt.Errorf("read blob %s (%s): %w", e.Hash, e.Name, err)
	}
	out.Size = obj.Size()
	return out, nil
}

// Stat implements tree.Reader.
func (sn *Snapshot) Stat(p string) (tree.Entry, error) {
	e, _, err := sn.lookup(p)
	return e, err
}

// TreeID returns the Git tree ID of the folder at p ("" for the root).
func (sn *Snapshot) TreeID(p string) (tree.Hash, error) {
	e, _, err := sn.lookup(p)
	if err != nil {
		return "", err
	}
	if !e.IsDir() {
		return "", fmt.Errorf("%q in commit %s is not a folder", p, sn.Commit)
	}
	return e.Hash, nil
}

// ReadDir implements tree.Reader: entries in Git's tree order.
func (sn *Snapshot) ReadDir(p string) ([]tree.Entry, error) {
	e, t, err := sn.lookup(p)
	if err != nil {
		return nil, err
	}
	if t == nil {
		if e.Mode == tree.ModeSymlink {
			return nil, fmt.Errorf("%q: %w", p, tree.ErrSymlink)
		}
		return nil, fmt.Errorf("%q in commit %s is not a folder", p, sn.Commit)
	}
	out := make([]tree.Entry, 0, len(t.Entries))
	for _, te := range t.Entries {
		if err := safeName(t.Hash, te.Name); err != nil {
			return nil, err
		}
		ent, err := sn.entry(te)
		if err != nil {
			return nil, err
		}
		out = append(out, ent)
	}
	return out, nil
}

// ReadFile implements tree.Reader. The limit is capped by the repository's
// MaxFileBytes; the blob's size is checked before it is read.
func (sn *Snapshot) ReadFile(p string, limit int64) ([]byte, error) {
	e, _, err := sn.lookup(p)
	if err != nil {
		return nil, err
	}
	if err := sn.checkRegular(p, e, limit); err != nil {
		return nil, err
	}
	r, err := sn.blobReader(plumbing.NewHash(string(e.Hash)))
	if err != nil {
		return nil, fmt.Errorf("read blob of %q: %w", p, err)
	}
	defer r.Close()
	data, err := io.ReadAll(io.LimitReader(r, e.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return data, nil
}

// OpenFile streams a regular file's content (for large files: blobs over
// 1 MiB are read from the pack as they are consumed). Size limits apply as
// for ReadFile. The caller closes the reader.
func (sn *Snapshot) OpenFile(p string, limit int64) (io.ReadCloser, tree.Entry, error) {
	e, _, err := sn.lookup(p)
	if err != nil {
		return nil, tree.Entry{}, err
	}
	if err := sn.checkRegular(p, e, limit); err != nil {
		return nil, tree.Entry{}, err
	}
	r, err := sn.blobReader(plumbing.NewHash(string(e.Hash)))
	if err != nil {
		return nil, tree.Entry{}, fmt.Errorf("read blob of %q: %w", p, err)
	}
	return r, e, nil
}

// checkRegular refuses symlinks, folders, submodules and files over the limit.
func (sn *Snapshot) checkRegular(p string, e tree.Entry, limit int64) error {
	switch e.Mode {
	case tree.ModeSymlink:
		return fmt.Errorf("%q: %w", p, tree.ErrSymlink)
	case tree.ModeFile, tree.ModeExecutable:
	default:
		return fmt.Errorf("%q in commit %s is not a regular file (mode %o)", p, sn.Commit, e.Mode)
	}
	max := sn.maxBytes
	if limit > 0 && (max <= 0 || limit < max) {
		max = limit
	}
	if max > 0 && e.Size > max {
		return fmt.Errorf("%q in commit %s is %d bytes, limit %d: %w", p, sn.Commit, e.Size, max, tree.ErrTooLarge)
	}
	return nil
}

// ReadLink returns a symlink's target as data (it is never followed).
func (sn *Snapshot) ReadLink(p string) (string, error) {
	e, _, err := sn.lookup(p)
	if err != nil {
		return "", err
	}
	if e.Mode != tree.ModeSymlink {
		return "", fmt.Errorf("%q is not a symlink", p)
	}
	b, err := sn.readBlob(e)
	return string(b), err
}

func (sn *Snapshot) readBlob(e tree.Entry) ([]byte, error) {
	r, err := sn.blobReader(plumbing.NewHash(string(e.Hash)))
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(io.LimitReader(r, 1<<16))
}

// Walk calls fn for every entry under p (depth first, Git order); see tree.Walk.
func (sn *Snapshot) Walk(p string, fn tree.WalkFunc) error { return tree.Walk(sn, p, fn) }
