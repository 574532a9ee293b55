package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// TestValidateFiles (issue 9, item 8): `expsync validate FILE...` was a
// usage error (exit 2) for a file. It now checks the repository the file
// belongs to — the folder above it holding .git — as a commit of it would
// plan, from the root or a sub-folder, printing problems as paths the user
// can open; a file expsync does not read fails, and a file outside any
// repository is a usage error. Run through the built binary in a clone made
// by the git CLI, as a pre-commit hook runs it.
func TestValidateFiles(t *testing.T) {
	b := newBinLab(t)
	b.Commit("experiments", map[string]string{
		"experiments/a.yaml":    experimentYAML("a", "true", ""),
		"experiments/sub/b.yml": experimentYAML("b", "true", "  sweep:\n    matrix: {seed: [1, 2]}\n"),
		"notes/c.yaml":          "not: an experiment\n",
	})
	repo := b.Clone()
	validate := func(dir string, args ...string) (int, string, string) {
		t.Helper()
		cmd := exec.Command(expsyncBinary(t), append([]string{"validate"}, args...)...)
		cmd.Dir = dir
		var out, errb strings.Builder
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return code, out.String(), errb.String()
	}
	if code, out, errs := validate(repo, "experiments/a.yaml", "experiments/sub/b.yml"); code != 0 || !strings.Contains(out, ".: valid: 2 experiment(s), 3 run(s)") {
		t.Errorf("two files from the root: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := validate(filepath.Join(repo, "experiments", "sub"), "b.yml"); code != 0 || !strings.Contains(out, "../..: valid: 2 experiment(s)") {
		t.Errorf("a file from a sub-folder: exit %d\n%s%s", code, out, errs)
	}
	if code, out, errs := validate(t.TempDir(), filepath.Join(repo, "experiments", "a.yaml")); code != 0 || !strings.Contains(out, repo+": valid") {
		t.Errorf("an absolute path: exit %d\n%s%s", code, out, errs)
	}

	// A broken file: its problem with file:line:col, relative to where
	// the command runs.
	if err := os.WriteFile(filepath.Join(repo, "experiments", "sub", "b.yml"), []byte(experimentYAML("b", "true", "  comand: [x]\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	code, out, errs := validate(filepath.Join(repo, "experiments"), "sub/b.yml")
	if code != 1 || !strings.Contains(errs, "../experiments/sub/b.yml:9:3: spec: unknown field \"comand\"") {
		t.Errorf("a broken file: exit %d, want 1 with ../experiments/sub/b.yml:9:3\n%s%s", code, out, errs)
	}
	// A file expsync does not read.
	if code, _, errs := validate(repo, "notes/c.yaml"); code != 1 || !strings.Contains(errs, "notes/c.yaml:1:1: expsync does not read this file") {
		t.Errorf("a file outside experiments/: exit %d, want 1\n%s", code, errs)
	}
	// A file in no repository.
	lone := filepath.Join(t.TempDir(), "x.yaml")
	if err := os.WriteFile(lone, []byte("x: 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := validate(filepath.Dir(lone), "x.yaml"); code != 2 || !strings.Contains(errs, "no repository above it") {
		t.Errorf("a file in no repository: exit %d, want 2\n%s", code, errs)
	}
}

// TestPreCommitHooks: the shipped .pre-commit-hooks.yaml runs `expsync
// validate` on the files a commit changes that expsync reads, all at once
// (require_serial: one plan of the repository, not one per batch).
func TestPreCommitHooks(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", ".pre-commit-hooks.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var hooks []struct {
		ID            string `yaml:"id"`
		Entry         string `yaml:"entry"`
		Language      string `yaml:"language"`
		Files         string `yaml:"files"`
		RequireSerial bool   `yaml:"require_serial"`
	}
	if err := yaml.Unmarshal(data, &hooks); err != nil {
		t.Fatal(err)
	}
	if len(hooks) != 2 {
		t.Fatalf("%d hooks, want 2", len(hooks))
	}
	for _, h := range hooks {
		if h.Entry != "expsync validate" || !h.RequireSerial || (h.Language != "golang" && h.Language != "system") {
			t.Errorf("hook %+v", h)
		}
		re := regexp.MustCompile(h.Files) // pre-commit's Python regexes: this one is RE2 too
		for p, want := range map[string]bool{
			"expsync.yaml": true, "experiments/a.yaml": true, "experiments/x/b.yml": true, "lab/experiments/c.yaml": true,
			"results/a/1/run.json": false, "experiments/a.json": false, "notes/a.yaml": false, "README.md": false,
		} {
			if re.MatchString(p) != want {
				t.Errorf("hook %s: files %q matches %s: %v, want %v", h.ID, h.Files, p, !want, want)
			}
		}
	}
}
