package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestReproduceRepoFolders: --repo takes "a clone, a bare repository or a
// URL" (its help); a bare repository was refused as "repository does not
// exist" (found by running docs/reproducing-runs.md's commands).
func TestReproduceRepoFolders(t *testing.T) {
	dir := t.TempDir()
	git := func(args ...string) {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-c", "user.name=t", "-c", "user.email=t@example.invalid", "-c", "init.defaultBranch=main"}, args...)...)
		cmd.Dir = dir
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
	}
	git("init", "-q", "clone")
	if err := os.MkdirAll(filepath.Join(dir, "clone", "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "clone", "sub", "f"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	git("-C", "clone", "add", "-A")
	git("-C", "clone", "commit", "-q", "-m", "one")
	git("clone", "-q", "--bare", "clone", "bare.git")
	if err := os.Mkdir(filepath.Join(dir, "plain"), 0o755); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		repo, wantErr string
	}{
		{"bare.git", ""},
		{"clone", ""},
		{"clone/sub", ""},
		{"plain", "repository does not exist"},
	} {
		o := &reproduceOptions{Repo: filepath.Join(dir, c.repo), Paths: []string{dir}}
		objs, _, release, err := o.objects(context.Background())
		release()
		switch {
		case c.wantErr == "" && (err != nil || objs == nil):
			t.Errorf("--repo %s: %v", c.repo, err)
		case c.wantErr != "" && (err == nil || !strings.Contains(err.Error(), c.wantErr)):
			t.Errorf("--repo %s: error %v, want one saying %q", c.repo, err, c.wantErr)
		}
	}
}
