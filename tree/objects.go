package tree

import (
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/filemode"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// BlobID is the Git blob ID of content (what `git hash-object` prints).
func BlobID(content []byte) Hash {
	return Hash(plumbing.ComputeHash(plumbing.BlobObject, content).String())
}

// copyBuffers recycles hashing buffers: a working folder has many files.
var copyBuffers = sync.Pool{New: func() any { b := make([]byte, 64<<10); return &b }}

// BlobIDReader is the Git blob ID of size bytes read from r, streamed so a
// large file is never held in memory.
func BlobIDReader(r io.Reader, size int64) (Hash, error) {
	h := plumbing.NewHasher(plumbing.BlobObject, size)
	buf := copyBuffers.Get().(*[]byte)
	defer copyBuffers.Put(buf)
	// Both sides wrapped: *os.File.WriteTo would bring its own buffer.
	n, err := io.CopyBuffer(struct{ io.Writer }{h}, struct{ io.Reader }{r}, *buf)
	if err != nil {
		return "", err
	}
	if n != size {
		return "", fmt.Errorf("read %d bytes, expected %d: file changed while hashing", n, size)
	}
	return Hash(h.Sum().String()), nil
}

// SortEntries sorts entries as Git sorts a tree: by name, folders compared
// as if their name ended in "/".
func SortEntries(entries []Entry) {
	sort.Slice(entries, func(i, j int) bool { return sortName(entries[i]) < sortName(entries[j]) })
}

func sortName(e Entry) string {
	if e.IsDir() {
		return e.Name + "/"
	}
	return e.Name
}

// TreeID is the Git tree ID of a folder with these entries, encoded with
// go-git's own tree encoder so it equals `git write-tree`. Entries must be
// sorted with SortEntries.
func TreeID(entries []Entry) (Hash, error) {
	t := object.Tree{Entries: make([]object.TreeEntry, len(entries))}
	for i, e := range entries {
		if !plumbing.IsHash(string(e.Hash)) {
			return "", fmt.Errorf("tree entry %q: %q is not an object ID", e.Name, e.Hash)
		}
		t.Entries[i] = object.TreeEntry{Name: e.Name, Mode: filemode.FileMode(e.Mode), Hash: plumbing.NewHash(string(e.Hash))}
	}
	var o plumbing.MemoryObject
	if err := t.Encode(&o); err != nil {
		return "", fmt.Errorf("encode tree: %w", err)
	}
	return Hash(o.Hash().String()), nil
}

// EmptyTree is the ID of the empty tree; only a root can be empty, since Git
// does not record empty folders.
const EmptyTree Hash = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
