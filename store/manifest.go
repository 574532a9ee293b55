package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strconv"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// Manifest lists the files of a tree (an exported repository subtree, or a
// run's outputs): sorted by path, one entry per file or symlink, so the same
// files always give the same bytes.
type Manifest struct {
	Entries []contract.File `json:"entries"`
}

// Mode strings of manifest entries.
var (
	ModeFile       = FormatMode(tree.ModeFile)
	ModeExecutable = FormatMode(tree.ModeExecutable)
	ModeSymlink    = FormatMode(tree.ModeSymlink)
)

// FormatMode formats a Git mode as a manifest mode string.
func FormatMode(m tree.Mode) string { return fmt.Sprintf("%06o", uint32(m)) }

// ParseMode parses a manifest mode string.
func ParseMode(s string) (tree.Mode, error) {
	v, err := strconv.ParseUint(s, 8, 32)
	if err != nil {
		return 0, fmt.Errorf("invalid mode %q", s)
	}
	return tree.Mode(v), nil
}

// Sort orders the entries by path (bytewise), the manifest's canonical order.
func (m *Manifest) Sort() {
	sort.Slice(m.Entries, func(i, j int) bool { return m.Entries[i].Path < m.Entries[j].Path })
}

// Marshal returns the manifest's canonical JSON: entries sorted by path,
// fixed field order, no HTML escaping, a trailing newline.
func (m Manifest) Marshal() ([]byte, error) {
	sorted := Manifest{Entries: append([]contract.File(nil), m.Entries...)}
	sorted.Sort()
	if sorted.Entries == nil {
		sorted.Entries = []contract.File{}
	}
	for i := 1; i < len(sorted.Entries); i++ {
		if sorted.Entries[i].Path == sorted.Entries[i-1].Path {
			return nil, fmt.Errorf("manifest lists %q twice", sorted.Entries[i].Path)
		}
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(sorted); err != nil {
		return nil, fmt.Errorf("encode manifest: %w", err)
	}
	return buf.Bytes(), nil
}

// Size returns the total size of the manifest's entries.
func (m Manifest) Size() int64 {
	var n int64
	for _, e := range m.Entries {
		n += e.Size
	}
	return n
}
