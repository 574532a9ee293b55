// Package reach answers whether Git objects named in an attestation are
// reachable from a revision of a local repository, and adds those checks to
// a verification report.
//
// Trees and blobs are what a run depends on, and they survive a squash
// merge; the commit itself does not, so it is checked only on request.
// Answers are cached and the history is walked once, lazily: verifying a
// thousand results folders against one repository walks each tree once.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package reach

import (
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/tree"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// Index knows the trees and blobs reachable from one revision.
type Index struct {
	repo *git.Repository
	rev  plumbing.Hash

	mu      sync.Mutex
	history object.CommitIter // nil once the history is exhausted
	trees   map[plumbing.Hash]struct{}
	blobs   map[plumbing.Hash]struct{}
	commits map[plumbing.Hash]bool // HasCommit answers
	err     error
}

// Open opens the repository at dir (a work tree or a bare repository) and
// resolves rev ("" means HEAD).
func Open(dir, rev string) (*Index, error) {
	repo, err := git.PlainOpen(dir)
	if err != nil {
		return nil, fmt.Errorf("open repository %s: %w", dir, err)
	}
	if rev == "" {
		rev = "HEAD"
	}
	h, err := repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return nil, fmt.Errorf("resolve --rev %q in %s: %w", rev, dir, err)
	}
	iter, err := repo.Log(&git.LogOptions{From: *h})
	if err != nil {
		return nil, fmt.Errorf("walk history of %s in %s: %w", rev, dir, err)
	}
	return &Index{
		repo: repo, rev: *h, history: iter,
		trees: map[plumbing.Hash]struct{}{}, blobs: map[plumbing.Hash]struct{}{}, commits: map[plumbing.Hash]bool{},
	}, nil
}

// Rev returns the commit the index walks from.
func (x *Index) Rev() string { return x.rev.String() }

// HasTree reports whether tree id is reachable from the revision.
func (x *Index) HasTree(id string) (bool, error) { return x.has(id, x.trees) }

// TreeWithout returns the Git tree ID of tree id without paths (relative to
// it), from the repository's objects: how `expsync verify` recomputes a run
// identity's contextTree from the attested context tree. The tree need not
// be reachable (CheckReport says whether it is), only present.
func (x *Index) TreeWithout(id string, paths []string) (string, error) {
	x.mu.Lock() // go-git object storage is read by one goroutine at a time here
	defer x.mu.Unlock()
	r, err := tree.GitObjects(x.repo.Storer, id)
	if err != nil {
		return "", err
	}
	h, err := tree.TreeIDWithout(r, "", paths)
	if err != nil {
		return "", fmt.Errorf("tree %s: %w", id, err)
	}
	return string(h), nil
}

// HasBlob reports whether blob id is reachable from the revision.
func (x *Index) HasBlob(id string) (bool, error) { return x.has(id, x.blobs) }

// HasCommit reports whether commit id is in the repository at all.
func (x *Index) HasCommit(id string) (bool, error) {
	h, ok := parseHash(id)
	if !ok {
		return false, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	if found, ok := x.commits[h]; ok {
		return found, nil
	}
	_, err := x.repo.CommitObject(h)
	if errors.Is(err, plumbing.ErrObjectNotFound) {
		x.commits[h] = false
		return false, nil
	}
	if err != nil {
		return false, err
	}
	x.commits[h] = true
	return true, nil
}

func parseHash(id string) (plumbing.Hash, bool) {
	if len(id) != 40 {
		return plumbing.ZeroHash, false
	}
	return plumbing.NewHash(id), plumbing.IsHash(id)
}

func (x *Index) has(id string, set map[plumbing.Hash]struct{}) (bool, error) {
	h, ok := parseHash(id)
	if !ok {
		return false, nil
	}
	x.mu.Lock()
	defer x.mu.Unlock()
	for {
		if _, ok := set[h]; ok {
			return true, nil
		}
		if x.err != nil {
			return false, x.err
		}
		if x.history == nil {
			return false, nil
		}
		x.walkNextCommit()
	}
}

// walkNextCommit adds the next commit's trees and blobs to the index.
func (x *Index) walkNextCommit() {
	c, err := x.history.Next()
	if err == io.EOF {
		x.history.Close()
		x.history = nil
		return
	}
	if err != nil {
		x.err = fmt.Errorf("walk history: %w", err)
		return
	}
	if err := x.walkTree(c.TreeHash); err != nil {
		x.err = fmt.Errorf("walk tree of commit %s: %w", c.Hash, err)
	}
}

func (x *Index) walkTree(h plumbing.Hash) error {
	if _, seen := x.trees[h]; seen {
		return nil // this tree and everything under it are known
	}
	t, err := x.repo.TreeObject(h)
	if err != nil {
		return err
	}
	x.trees[h] = struct{}{}
	for _, e := range t.Entries {
		switch e.Mode {
		case filemode.Dir:
			if err := x.walkTree(e.Hash); err != nil {
				return err
			}
		case filemode.Submodule:
			// A commit of another repository: not an object here.
		default:
			x.blobs[e.Hash] = struct{}{}
		}
	}
	return nil
}

// CheckReport adds to r whether the Git objects that v's resolved
// dependencies name are reachable from the index's revision: the context
// tree (gitTree) and the experiment file and templates (gitBlob) must be;
// the commit (gitCommit) must exist only when requireCommit is set, and is
// otherwise reported as not checked when absent (a squash merge drops it).
func CheckReport(r *attest.Report, v *attest.Verified, x *Index, requireCommit bool) {
	at := " from " + x.Rev()[:12]
	for _, d := range v.DependenciesWith("gitTree") {
		id := d.Digest.Get("gitTree")
		name := "tree " + d.Name
		switch ok, err := x.HasTree(id); {
		case err != nil:
			r.Add(name, attest.StatusFailed, err.Error())
		case !ok:
			r.Add(name, attest.StatusFailed, fmt.Sprintf("tree %s is not reachable%s", id, at))
		default:
			r.Add(name, attest.StatusOK, id+" reachable"+at)
		}
	}
	for _, d := range v.DependenciesWith("gitBlob") {
		id := d.Digest.Get("gitBlob")
		name := "blob " + d.Name
		switch ok, err := x.HasBlob(id); {
		case err != nil:
			r.Add(name, attest.StatusFailed, err.Error())
		case !ok:
			r.Add(name, attest.StatusFailed, fmt.Sprintf("blob %s is not reachable%s", id, at))
		default:
			r.Add(name, attest.StatusOK, id+" reachable"+at)
		}
	}
	for _, d := range v.DependenciesWith("gitCommit") {
		id := d.Digest.Get("gitCommit")
		switch ok, err := x.HasCommit(id); {
		case err != nil:
			r.Add("commit", attest.StatusFailed, err.Error())
		case ok:
			r.Add("commit", attest.StatusOK, id+" is in the repository")
		case requireCommit:
			r.Add("commit", attest.StatusFailed, fmt.Sprintf("commit %s is not in the repository (--require-commit)", id))
		default:
			r.Add("commit", attest.StatusNotChecked, fmt.Sprintf("commit %s is not in the repository (squash-merged?); its trees decide", id))
		}
	}
}
