package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunRefusesBadFlagValues: nonsense flag values are usage
// errors (exit 2) naming what is allowed, before any repository is touched.
func TestRunRefusesBadFlagValues(t *testing.T) {
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"negative jobs", []string{"-j", "-3"}, "--jobs -3: give a positive number"},
		{"negative batch interval", []string{"--batch-interval", "-1s"}, "--batch-interval -1s: give a positive duration"},
		{"zero batch interval", []string{"--batch-interval", "0s"}, "--batch-interval 0s"},
		{"unknown progress", []string{"--progress", "fancy"}, `--progress "fancy": use one of auto, bar, plain, none`},
		{"no key", []string{"--key", ""}, "--key is required"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"run", "/nonexistent/repo.git", "--key", "k.key"}, c.args...)
			code, _, stderr := labCLI(t, args...)
			if code != 2 || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit 2 mentioning %q", code, stderr, c.want)
			}
		})
	}
}

// TestRunRefusesAFolderThatIsNotAStore: a --store or --state that names a
// folder holding other things (a clone, a home folder: a typo) is refused
// with exit 2 naming it, before anything is written into it; before,
// expsync silently created sha256/, runs/, git/... among the user's files.
// An empty or new folder, or one expsync made, is fine.
func TestRunRefusesAFolderThatIsNotAStore(t *testing.T) {
	busy := t.TempDir()
	if err := os.WriteFile(filepath.Join(busy, "notes.txt"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	key, _ := labKeyPair(t)
	for _, flag := range []string{"--store", "--state"} {
		t.Run(flag, func(t *testing.T) {
			args := []string{"run", "/nonexistent/repo.git", "--key", key, "--store", t.TempDir(), "--state", t.TempDir(), flag, busy}
			code, _, stderr := labCLI(t, args...)
			if code != 2 || !strings.Contains(stderr, flag+" "+busy) || !strings.Contains(stderr, "not empty") {
				t.Errorf("exit %d, stderr %q; want exit 2 naming %s %s", code, stderr, flag, busy)
			}
			entries, _ := os.ReadDir(busy)
			if len(entries) != 1 {
				t.Errorf("expsync wrote into %s: %d entries", busy, len(entries))
			}
		})
	}
}
