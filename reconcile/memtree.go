package reconcile

import (
	"path"

	"github.com/expsync/expsync/tree"
)

// memFolder is a snapshot holding one run folder, for verifying a folder
// from the run cache with the same check as a folder in a branch.
func memFolder(dir string, files map[string][]byte) tree.Reader {
	m := tree.NewMemory()
	for name, data := range files {
		_ = m.Write(path.Join(dir, name), data, tree.ModeFile)
	}
	return m
}
