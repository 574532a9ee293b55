package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Entries expsync makes in a store folder and in a state folder.
var (
	StoreEntries = []string{"sha256", "trees", "gitblobs", "runs", "locks", "tmp", "work"}
	StateEntries = []string{"executor", "git", "work", "reproduce", "audit"}
)

// CheckOwnFolder refuses a store or state folder that holds other things
// and nothing expsync made (a clone or a home folder given by mistake):
// expsync would scatter its folders among the user's files. A folder that
// does not exist, is empty (hidden files and lost+found aside: a fresh
// volume) or has one of expsync's entries is fine. what names the setting
// ("--store", "store:") in the error.
func CheckOwnFolder(what, dir string, ours []string) error {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("%s %s: %w", what, dir, err)
	}
	var others []string
	for _, e := range entries {
		name := e.Name()
		if slices.Contains(ours, name) {
			return nil
		}
		if !strings.HasPrefix(name, ".") && name != "lost+found" {
			others = append(others, name)
		}
	}
	if len(others) == 0 {
		return nil
	}
	if len(others) > 3 {
		others = append(others[:3], "...")
	}
	return fmt.Errorf("%s %s is not empty (%s) and is not a folder expsync made: give a new or empty folder, or the one expsync used before",
		what, dir, strings.Join(others, ", "))
}

// DefaultStoreDir is the store folder when none is given: $EXPSYNC_STORE,
// else expsync/store in the user's cache folder.
func DefaultStoreDir() string {
	if v := os.Getenv("EXPSYNC_STORE"); v != "" {
		return v
	}
	dir, err := os.UserCacheDir()
	if err != nil {
		dir = os.TempDir()
	}
	return filepath.Join(dir, "expsync", "store")
}

// DefaultStateDir is the state folder when none is given: $EXPSYNC_STATE,
// else $XDG_STATE_HOME/expsync, else ~/.local/state/expsync.
func DefaultStateDir() string {
	if v := os.Getenv("EXPSYNC_STATE"); v != "" {
		return v
	}
	if v := os.Getenv("XDG_STATE_HOME"); v != "" {
		return filepath.Join(v, "expsync")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "expsync-state")
	}
	return filepath.Join(home, ".local", "state", "expsync")
}
