package diff

import (
	"fmt"
	"io"
	"io/fs"
	"strings"
	"sync"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/expsync/expsync/tree"
)

// Repository is a local Git repository (a clone or a bare repository)
// whose revisions can be compared.
type Repository struct {
	repo *git.Repository
	mu   sync.Mutex // go-git's storage is not safe for concurrent reads
}

// OpenRepository opens the repository at dir (or the one dir lies in).
func OpenRepository(dir string) (*Repository, error) {
	r, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if err != nil {
		return nil, fmt.Errorf("%s is not in a Git repository: %w", dir, err)
	}
	return &Repository{repo: r}, nil
}

// Commit resolves a revision (a branch, tag, commit ID, HEAD~2, ...) to a
// commit ID.
func (r *Repository) Commit(rev string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return "", fmt.Errorf("revision %q: %w", rev, err)
	}
	if _, err := r.repo.CommitObject(*h); err != nil {
		return "", fmt.Errorf("revision %q is not a commit: %w", rev, err)
	}
	return h.String(), nil
}

// MergeBase is the best common ancestor of two commits: the base a pull
// request from head into target is compared with. It fails when there is
// none (unrelated histories, or a shallow clone that cut it off).
func (r *Repository) MergeBase(target, head string) (string, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	a, err := r.repo.CommitObject(plumbing.NewHash(target))
	if err != nil {
		return "", err
	}
	b, err := r.repo.CommitObject(plumbing.NewHash(head))
	if err != nil {
		return "", err
	}
	bases, err := a.MergeBase(b)
	if err != nil {
		return "", fmt.Errorf("merge base of %s and %s: %w", shortCommit(target), shortCommit(head), err)
	}
	if len(bases) == 0 {
		return "", fmt.Errorf("%s and %s have no common ancestor here (unrelated histories, or a shallow clone: fetch more history)", shortCommit(target), shortCommit(head))
	}
	return bases[0].Hash.String(), nil
}

// Tree is a commit's tree as a tree.Reader.
func (r *Repository) Tree(commit string) (tree.Reader, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c, err := r.repo.CommitObject(plumbing.NewHash(commit))
	if err != nil {
		return nil, fmt.Errorf("commit %s: %w", commit, err)
	}
	t, err := c.Tree()
	if err != nil {
		return nil, fmt.Errorf("tree of commit %s: %w", commit, err)
	}
	return &revisionTree{r: r, root: t, commit: commit}, nil
}

type revisionTree struct {
	r      *Repository
	root   *object.Tree
	commit string
}

// lookup finds p's entry and, for a folder, its tree.
func (t *revisionTree) lookup(p string) (tree.Entry, *object.Tree, error) {
	clean, err := tree.Clean(p)
	if err != nil {
		return tree.Entry{}, nil, err
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	if clean == "" {
		return tree.Entry{Mode: tree.ModeDir, Hash: tree.Hash(t.root.Hash.String())}, t.root, nil
	}
	cur := t.root
	parts := strings.Split(clean, "/")
	for i, name := range parts {
		e, err := cur.FindEntry(name)
		if err != nil {
			return tree.Entry{}, nil, &fs.PathError{Op: "stat", Path: p, Err: tree.ErrNotExist}
		}
		ent, err := t.entryLocked(*e)
		if err != nil {
			return tree.Entry{}, nil, err
		}
		if e.Mode != filemode.Dir {
			if i < len(parts)-1 {
				return tree.Entry{}, nil, &fs.PathError{Op: "stat", Path: p, Err: tree.ErrNotExist}
			}
			return ent, nil, nil
		}
		if cur, err = t.r.repo.TreeObject(e.Hash); err != nil {
			return tree.Entry{}, nil, fmt.Errorf("read tree %s of %q: %w", e.Hash, p, err)
		}
		if i == len(parts)-1 {
			return ent, cur, nil
		}
	}
	return tree.Entry{}, nil, &fs.PathError{Op: "stat", Path: p, Err: tree.ErrNotExist}
}

func (t *revisionTree) entryLocked(e object.TreeEntry) (tree.Entry, error) {
	out := tree.Entry{Name: e.Name, Mode: tree.Mode(e.Mode), Hash: tree.Hash(e.Hash.String())}
	if e.Mode == filemode.Regular || e.Mode == filemode.Executable || e.Mode == filemode.Symlink {
		obj, err := t.r.repo.Storer.EncodedObject(plumbing.BlobObject, e.Hash)
		if err != nil {
			return tree.Entry{}, fmt.Errorf("read blob %s (%s): %w", e.Hash, e.Name, err)
		}
		out.Size = obj.Size()
	}
	return out, nil
}

func (t *revisionTree) Stat(p string) (tree.Entry, error) {
	e, _, err := t.lookup(p)
	return e, err
}

func (t *revisionTree) ReadDir(p string) ([]tree.Entry, error) {
	_, dir, err := t.lookup(p)
	if err != nil {
		return nil, err
	}
	if dir == nil {
		return nil, fmt.Errorf("%q in commit %s is not a folder", p, shortCommit(t.commit))
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	out := make([]tree.Entry, 0, len(dir.Entries))
	for _, e := range dir.Entries {
		ent, err := t.entryLocked(e)
		if err != nil {
			return nil, err
		}
		out = append(out, ent)
	}
	return out, nil
}

func (t *revisionTree) ReadFile(p string, limit int64) ([]byte, error) {
	e, _, err := t.lookup(p)
	if err != nil {
		return nil, err
	}
	switch e.Mode {
	case tree.ModeSymlink:
		return nil, fmt.Errorf("%q: %w", p, tree.ErrSymlink)
	case tree.ModeFile, tree.ModeExecutable:
	default:
		return nil, fmt.Errorf("%q in commit %s is not a regular file", p, shortCommit(t.commit))
	}
	if limit > 0 && e.Size > limit {
		return nil, fmt.Errorf("%q is %d bytes, limit %d: %w", p, e.Size, limit, tree.ErrTooLarge)
	}
	t.r.mu.Lock()
	defer t.r.mu.Unlock()
	blob, err := t.r.repo.BlobObject(plumbing.NewHash(string(e.Hash)))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	rd, err := blob.Reader()
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	defer rd.Close()
	data, err := io.ReadAll(io.LimitReader(rd, e.Size+1))
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", p, err)
	}
	return data, nil
}
