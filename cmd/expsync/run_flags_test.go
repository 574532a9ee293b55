package main

import (
	"strings"
	"testing"
)

// TestRunRefusesBadFlagValues (QA F13.6): nonsense flag values are usage
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
