package tree

import (
	"fmt"
	"io/fs"
	"sync"
)

// Memory is an in-memory snapshot for tests: files written with Write, IDs
// computed exactly as Git would compute them for the same files.
type Memory struct {
	snapshot
	mu   sync.Mutex
	root *memNode
}

type memNode struct {
	mode     Mode
	data     []byte // file content or symlink target
	children map[string]*memNode
	entries  []Entry // cached listing of a folder; nil when stale
}

// NewMemory returns an empty tree.
func NewMemory() *Memory {
	m := &Memory{root: &memNode{mode: ModeDir, children: map[string]*memNode{}}}
	m.snapshot = snapshot{l: m}
	return m
}

// MemoryOf returns a tree of regular files (path → content); it panics on a
// bad path, which in a test is a bug of the test.
func MemoryOf(files map[string]string) *Memory {
	m := NewMemory()
	for p, content := range files {
		if err := m.Write(p, []byte(content), ModeFile); err != nil {
			panic(err)
		}
	}
	return m
}

// Write creates or replaces the file at p (parents are created). mode is
// ModeFile, ModeExecutable or ModeSymlink (content is then the link target).
func (m *Memory) Write(p string, content []byte, mode Mode) error {
	switch mode {
	case ModeFile, ModeExecutable, ModeSymlink:
	default:
		return fmt.Errorf("write %q: mode %o is not a file mode", p, mode)
	}
	clean, err := Clean(p)
	if err != nil {
		return err
	}
	if clean == "" {
		return fmt.Errorf("write %q: the root is a folder", p)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	n := m.root
	rest := clean
	for {
		n.entries = nil
		name, tail, more := cut(rest)
		if !more {
			if c, ok := n.children[name]; ok && c.mode == ModeDir {
				return fmt.Errorf("write %q: a folder exists there", p)
			}
			n.children[name] = &memNode{mode: mode, data: append([]byte(nil), content...)}
			return nil
		}
		c, ok := n.children[name]
		if !ok {
			c = &memNode{mode: ModeDir, children: map[string]*memNode{}}
			n.children[name] = c
		} else if c.mode != ModeDir {
			return fmt.Errorf("write %q: %q is a file", p, name)
		}
		n, rest = c, tail
	}
}

// Remove deletes the file or folder at p; folders left empty disappear, as
// in Git.
func (m *Memory) Remove(p string) error {
	clean, err := Clean(p)
	if err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var path []*memNode
	var names []string
	n := m.root
	rest := clean
	for rest != "" {
		name, tail, _ := cut(rest)
		c, ok := n.children[name]
		if !ok {
			return &fs.PathError{Op: "remove", Path: p, Err: ErrNotExist}
		}
		path, names = append(path, n), append(names, name)
		n, rest = c, tail
	}
	for i := len(path) - 1; i >= 0; i-- {
		path[i].entries = nil
		if i == len(path)-1 || len(path[i+1].children) == 0 {
			delete(path[i].children, names[i])
		}
	}
	return nil
}

func (m *Memory) node(dir string) (*memNode, error) {
	n := m.root
	rest := dir
	for rest != "" {
		name, tail, _ := cut(rest)
		c, ok := n.children[name]
		if !ok || c.mode != ModeDir {
			return nil, &fs.PathError{Op: "readdir", Path: dir, Err: ErrNotExist}
		}
		n, rest = c, tail
	}
	return n, nil
}

func (m *Memory) listDir(dir string) ([]Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	n, err := m.node(dir)
	if err != nil {
		return nil, err
	}
	return m.list(n)
}

func (m *Memory) list(n *memNode) ([]Entry, error) {
	if n.entries != nil {
		return n.entries, nil
	}
	entries := make([]Entry, 0, len(n.children))
	for name, c := range n.children {
		e := Entry{Name: name, Mode: c.mode}
		if c.mode == ModeDir {
			sub, err := m.list(c)
			if err != nil {
				return nil, err
			}
			if len(sub) == 0 {
				continue
			}
			if e.Hash, err = TreeID(sub); err != nil {
				return nil, err
			}
		} else {
			e.Hash = BlobID(c.data)
			e.Size = int64(len(c.data))
		}
		entries = append(entries, e)
	}
	SortEntries(entries)
	n.entries = entries
	return entries, nil
}

func (m *Memory) readBlob(p string, _ Entry, _ int64) ([]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	dir, name := Split(p)
	n, err := m.node(dir)
	if err != nil {
		return nil, err
	}
	c, ok := n.children[name]
	if !ok {
		return nil, &fs.PathError{Op: "read", Path: p, Err: ErrNotExist}
	}
	return append([]byte(nil), c.data...), nil
}
