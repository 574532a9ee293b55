package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestValidateGolden runs `expsync validate` on every case of
// testdata/validate: CASE/repo is a repository folder, CASE/args the extra
// arguments (optional), CASE/expected the exit code on its first line
// ("exit: N") followed by what validate prints (stdout, then stderr), with
// the case's folder written as REPO.
func TestValidateGolden(t *testing.T) {
	cases, err := filepath.Glob("../../testdata/validate/*")
	if err != nil || len(cases) == 0 {
		t.Fatalf("no cases: %v", err)
	}
	for _, dir := range cases {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			repo := filepath.Join(dir, "repo")
			var args []string
			if b, err := os.ReadFile(filepath.Join(dir, "args")); err == nil {
				args = strings.Fields(string(b))
			}
			want, err := os.ReadFile(filepath.Join(dir, "expected"))
			if err != nil {
				t.Fatal(err)
			}
			code, out := runValidate(t, append(args, repo)...)
			got := "exit: " + string(rune('0'+code)) + "\n" + strings.ReplaceAll(out, repo, "REPO")
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("validate %s (-want +got):\n%s", strings.Join(args, " "), diff)
			}
		})
	}
}

func runValidate(t *testing.T, args ...string) (int, string) {
	t.Helper()
	root := newRootCmd()
	var out bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&out)
	root.SetArgs(append([]string{"validate"}, args...))
	err := root.ExecuteContext(context.Background())
	var ee *exitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.code, out.String()
	}
	t.Fatalf("validate: %v", err)
	return 0, ""
}

// TestValidateRefusesSymlinkedExperimentFile: a symlink is data, never a
// way to read a file outside the repository.
func TestValidateRefusesSymlinkedExperimentFile(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "experiments"), 0o755); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(outside, []byte("apiVersion: expsync.dev/v1alpha1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(dir, "experiments", "a.yaml")); err != nil {
		t.Fatal(err)
	}
	code, out := runValidate(t, dir)
	want := filepath.Join(dir, "experiments", "a.yaml") + ":1:1: must be a regular file, not a symlink (symlinks are not followed)\n" + dir + ": 1 problem(s)\n"
	if code != 1 || out != want {
		t.Errorf("exit %d, output:\n%s\nwant exit 1 and:\n%s", code, out, want)
	}
}

func TestValidateUsage(t *testing.T) {
	if code, _ := runValidate(t, "--mode", "cloud", "."); code != 2 {
		t.Errorf("--mode cloud: exit %d, want 2", code)
	}
	if code, _ := runValidate(t, filepath.Join(t.TempDir(), "missing")); code != 2 {
		t.Errorf("missing folder: exit %d, want 2", code)
	}
	// The examples users copy are valid in both modes.
	for _, mode := range []string{"local", "kubernetes"} {
		if code, out := runValidate(t, "--mode", mode, "../../examples/experiments"); code != 0 {
			t.Errorf("examples in %s mode: exit %d\n%s", mode, code, out)
		}
	}
}

func TestValidateFormats(t *testing.T) {
	repo := "../../testdata/validate/kubernetes/repo"
	file := filepath.Join(repo, "experiments", "k.yaml")
	code, out := runValidate(t, "--format", "github", repo)
	want := "::error file=" + file + ",line=14,col=20::spec.retries.limit: 5 is above the limit 3 (limits.maxRetries)\n" + repo + ": 1 problem(s)\n"
	if code != 1 || out != want {
		t.Errorf("github: exit %d\n%s\nwant\n%s", code, out, want)
	}
	code, out = runValidate(t, "--format", "json", repo)
	want = `{"file":"` + file + `","line":14,"column":20,"message":"spec.retries.limit: 5 is above the limit 3 (limits.maxRetries)"}` + "\n" + repo + ": 1 problem(s)\n"
	if code != 1 || out != want {
		t.Errorf("json: exit %d\n%s\nwant\n%s", code, out, want)
	}
	if code, _ := runValidate(t, "--format", "xml", repo); code != 2 {
		t.Errorf("--format xml: exit %d, want 2", code)
	}
}
