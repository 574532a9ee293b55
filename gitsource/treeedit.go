package gitsource

import (
	"fmt"
	"sort"
	"strings"

	"github.com/expsync/expsync/tree"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
)

// editNode is a folder of pending edits: files to write (nil: delete) and
// sub-folders with their own edits.
type editNode struct {
	files map[string][]byte
	dirs  map[string]*editNode
}

func newEditNode() *editNode {
	return &editNode{files: map[string][]byte{}, dirs: map[string]*editNode{}}
}

// buildEdits checks every path (no escapes, no clash between a file and a
// folder of the same name) and groups them by folder. A file it writes must
// pass Git's own path rules for every platform (tree.CheckGitPath): a
// commit holding ".git." or "aux.txt" pushes fine and then breaks the
// checkout of every later clone somewhere. Deleting such a path is allowed.
func buildEdits(files map[string][]byte) (*editNode, error) {
	root := newEditNode()
	for p, data := range files {
		segs, err := cleanPath(p)
		if err != nil {
			return nil, fmt.Errorf("file %w", err)
		}
		if len(segs) == 0 {
			return nil, fmt.Errorf("file path %q names the root", p)
		}
		if data != nil {
			if err := tree.CheckGitPath(strings.Join(segs, "/"), tree.ModeFile); err != nil {
				return nil, fmt.Errorf("file %w: nothing was committed", err)
			}
		}
		n := root
		for i, seg := range segs {
			if strings.EqualFold(seg, ".git") || strings.ContainsAny(seg, "\x00") {
				return nil, fmt.Errorf("file path %q: segment %q is not allowed", p, seg)
			}
			if i == len(segs)-1 {
				if _, clash := n.dirs[seg]; clash {
					return nil, fmt.Errorf("file path %q is also a folder of another file", p)
				}
				n.files[seg] = data
				break
			}
			if _, clash := n.files[seg]; clash {
				return nil, fmt.Errorf("file path %q runs through a file of the same change", p)
			}
			child := n.dirs[seg]
			if child == nil {
				child = newEditNode()
				n.dirs[seg] = child
			}
			n = child
		}
	}
	return root, nil
}

// applyEdits writes the edits onto the tree base (ZeroHash: empty) and
// returns the new tree ID; unchanged sub-trees are reused as they are.
func applyEdits(st storer.EncodedObjectStorer, base plumbing.Hash, edits *editNode) (plumbing.Hash, error) {
	entries := map[string]object.TreeEntry{}
	if !base.IsZero() {
		t, err := object.GetTree(st, base)
		if err != nil {
			return plumbing.ZeroHash, fmt.Errorf("read tree %s: %w", base, err)
		}
		for _, e := range t.Entries {
			entries[e.Name] = e
		}
	}
	for name, data := range edits.files {
		if data == nil {
			delete(entries, name)
			continue
		}
		h, err := writeBlob(st, data)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		mode := filemode.Regular
		if old, ok := entries[name]; ok && old.Mode == filemode.Executable {
			mode = filemode.Executable // keep an existing executable bit
		}
		entries[name] = object.TreeEntry{Name: name, Mode: mode, Hash: h}
	}
	for name, sub := range edits.dirs {
		var subBase plumbing.Hash
		if old, ok := entries[name]; ok && old.Mode == filemode.Dir {
			subBase = old.Hash
		}
		h, err := applyEdits(st, subBase, sub)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		if h == emptyTreeHash {
			delete(entries, name)
			continue
		}
		entries[name] = object.TreeEntry{Name: name, Mode: filemode.Dir, Hash: h}
	}
	return writeTree(st, entries)
}

// emptyTreeHash is Git's ID of the empty tree.
var emptyTreeHash = plumbing.NewHash("4b825dc642cb6eb9a060e54bf8d69288fbee4904")

func writeBlob(st storer.EncodedObjectStorer, data []byte) (plumbing.Hash, error) {
	obj := st.NewEncodedObject()
	obj.SetType(plumbing.BlobObject)
	obj.SetSize(int64(len(data)))
	w, err := obj.Writer()
	if err != nil {
		return plumbing.ZeroHash, err
	}
	if _, err := w.Write(data); err != nil {
		return plumbing.ZeroHash, err
	}
	if err := w.Close(); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}

// writeTree stores entries sorted as Git sorts them (folders compare as if
// their name ended in '/').
func writeTree(st storer.EncodedObjectStorer, entries map[string]object.TreeEntry) (plumbing.Hash, error) {
	list := make([]object.TreeEntry, 0, len(entries))
	for _, e := range entries {
		list = append(list, e)
	}
	key := func(e object.TreeEntry) string {
		if e.Mode == filemode.Dir {
			return e.Name + "/"
		}
		return e.Name
	}
	sort.Slice(list, func(i, j int) bool { return key(list[i]) < key(list[j]) })
	t := &object.Tree{Entries: list}
	obj := st.NewEncodedObject()
	if err := t.Encode(obj); err != nil {
		return plumbing.ZeroHash, err
	}
	return st.SetEncodedObject(obj)
}
