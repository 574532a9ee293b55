package store

import (
	"bytes"
	"context"
	"fmt"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// LinkReader is implemented by tree readers that can return a symlink's
// target (tree.Reader's ReadFile refuses symlinks by design).
type LinkReader interface {
	ReadLink(path string) (string, error)
}

// ExportTree exports the subtree at path of r into s: every file's bytes as
// a blob and the subtree's manifest under its Git tree ID, which it returns.
// Subtrees already exported (by tree ID) are reused, not re-read, so
// exporting a new commit reads only what changed.
func ExportTree(ctx context.Context, s Store, r tree.Reader, path string) (tree.Hash, error) {
	root, err := r.Stat(path)
	if err != nil {
		return "", fmt.Errorf("export tree %q: %w", path, err)
	}
	if !root.IsDir() {
		return "", fmt.Errorf("export tree %q: not a folder", path)
	}
	if _, err := exportDir(ctx, s, r, path, root.Hash); err != nil {
		return "", err
	}
	return root.Hash, nil
}

func exportDir(ctx context.Context, s Store, r tree.Reader, dir string, id tree.Hash) (Manifest, error) {
	if m, err := s.Tree(ctx, string(id)); err == nil && complete(ctx, s, m) {
		return m, nil
	}
	entries, err := r.ReadDir(dir)
	if err != nil {
		return Manifest{}, fmt.Errorf("export tree: read folder %q: %w", dir, err)
	}
	var m Manifest
	for _, e := range entries {
		if err := ctx.Err(); err != nil {
			return Manifest{}, err
		}
		p := tree.Join(dir, e.Name)
		switch e.Mode {
		case tree.ModeDir:
			sub, err := exportDir(ctx, s, r, p, e.Hash)
			if err != nil {
				return Manifest{}, err
			}
			for _, se := range sub.Entries {
				se.Path = e.Name + "/" + se.Path
				m.Entries = append(m.Entries, se)
			}
		case tree.ModeFile, tree.ModeExecutable, tree.ModeSymlink:
			entry, err := exportBlob(ctx, s, r, p, e)
			if err != nil {
				return Manifest{}, err
			}
			m.Entries = append(m.Entries, entry)
		case tree.ModeSubmodule:
			// A submodule's content is not in this repository; a run cannot
			// depend on it through the context, so it is left out.
		default:
			return Manifest{}, fmt.Errorf("export tree: %q has unknown mode %o", p, e.Mode)
		}
	}
	m.Sort()
	if err := s.PutTree(ctx, string(id), m); err != nil {
		return Manifest{}, err
	}
	return m, nil
}

func exportBlob(ctx context.Context, s Store, r tree.Reader, p string, e tree.Entry) (contract.File, error) {
	entry := contract.File{Path: e.Name, Mode: FormatMode(e.Mode), GitBlob: string(e.Hash)}
	local, _ := s.(*Local)
	if local != nil {
		if sha, want, ok := local.gitBlobSHA256(string(e.Hash)); ok {
			// An object whose size is not the blob's was cut short (a
			// power cut) or written to: read the blob again, which
			// restores it, rather than record and run the broken bytes.
			if size, err := statObject(local, sha); err == nil && (want < 0 || size == want) {
				entry.SHA256, entry.Size = sha, size
				return entry, nil
			}
		}
	}
	var data []byte
	if e.Mode == tree.ModeSymlink {
		lr, ok := r.(LinkReader)
		if !ok {
			return contract.File{}, fmt.Errorf("export tree: %q is a symlink and this tree reader cannot read link targets", p)
		}
		target, err := lr.ReadLink(p)
		if err != nil {
			return contract.File{}, fmt.Errorf("export tree: read link %q: %w", p, err)
		}
		data = []byte(target)
	} else {
		b, err := r.ReadFile(p, 0)
		if err != nil {
			return contract.File{}, fmt.Errorf("export tree: read %q: %w", p, err)
		}
		data = b
	}
	obj, err := s.Put(ctx, bytes.NewReader(data), "")
	if err != nil {
		return contract.File{}, fmt.Errorf("export tree: store %q: %w", p, err)
	}
	entry.SHA256, entry.Size = obj.SHA256, obj.Size
	if local != nil {
		local.putGitBlobSHA256(string(e.Hash), obj.SHA256, obj.Size)
	}
	return entry, nil
}

func statObject(s *Local, sha string) (int64, error) {
	fi, err := osLstat(s.ObjectPath(sha))
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// complete reports whether every blob of a manifest is in the store with
// its bytes. A blob may have been dropped after a run wrote to it, or
// written to while no expsync was there to check (a process of a run of a
// killed expsync): a store that can rehash (Verifier, once per process and
// file) drops such a blob, and the export reads it from the tree again.
// Repository inputs are checked the same way before each run.
func complete(ctx context.Context, s Store, m Manifest) bool {
	v, verifies := s.(Verifier)
	for _, e := range m.Entries {
		if verifies {
			if v.Verify(ctx, e.SHA256) != nil {
				return false
			}
			continue
		}
		if ok, err := s.Has(ctx, e.SHA256); !ok || err != nil {
			return false
		}
	}
	return true
}
