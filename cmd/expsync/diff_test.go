package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/diff"
)

const diffSweep = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: sweep
spec:
  image: host
  command: ["sh", "train.sh", "{{params.seed}}"]
  sweep:
    matrix:
      seed: [1, 2]
  metrics: out/metrics.json
  timeout: 1m
`

func diffTrain(factor string) string {
	return "mkdir -p out\nawk -v s=\"$1\" 'BEGIN { printf \"{\\\"loss\\\": %g}\\n\", " + factor + " * s }' > out/metrics.json\n"
}

// TestDiffCommand runs `expsync diff` on a clone whose main and feature
// branch both have results from `expsync run`: the feature changes the
// code, main gains an experiment after the feature forked. With
// --merge-base (or main...feature) the pull request's view leaves main's
// later experiment out; against main's head it is a removed run.
func TestDiffCommand(t *testing.T) {
	l := newLab(t)
	key, pub := labKeyPair(t)
	store, state := t.TempDir(), t.TempDir()
	run := func(branch string) {
		t.Helper()
		code, stdout, stderr := labCLI(t, "run", l.URL(), "--allow-http", "--branch", branch, "--key", key, "--store", store, "--state", state, "--progress", "plain")
		if code != 0 {
			t.Fatalf("expsync run %s exited %d:\n%s\n%s", branch, code, stdout, stderr)
		}
	}
	experiments := l.Commit("sweep", map[string]string{"experiments/sweep/sweep.yaml": diffSweep, "experiments/sweep/train.sh": diffTrain("1")})
	run("main")
	l.Pull()
	// The feature branch forks here and changes the code.
	l.Git(l.Peer, "checkout", "-q", "-b", "feature")
	l.Git(l.Peer, "commit", "-q", "--allow-empty", "-m", "placeholder")
	writeFile(t, l.Peer, "experiments/sweep/train.sh", diffTrain("2"))
	l.Git(l.Peer, "commit", "-q", "-am", "feature: double the loss")
	l.Git(l.Peer, "push", "-q", "origin", "feature")
	run("feature")
	// main moves on with another experiment.
	l.Git(l.Peer, "checkout", "-q", "main")
	l.Commit("later", map[string]string{"experiments/later/later.yaml": strings.NewReplacer("name: sweep", "name: later", "seed: [1, 2]", "seed: [7]").Replace(diffSweep),
		"experiments/later/train.sh": diffTrain("1")})
	run("main")
	l.Pull()
	l.Git(l.Peer, "fetch", "-q", "origin", "feature:feature")

	report := func(args ...string) *diff.Report {
		t.Helper()
		code, stdout, stderr := labCLI(t, append([]string{"diff", "--repo", l.Peer, "--key", pub, "-o", "json"}, args...)...)
		if code != 0 {
			t.Fatalf("expsync diff %v exited %d:\n%s\n%s", args, code, stdout, stderr)
		}
		var r diff.Report
		if err := json.Unmarshal([]byte(stdout), &r); err != nil {
			t.Fatalf("not a JSON report: %v\n%s", err, stdout)
		}
		return &r
	}
	for _, args := range [][]string{{"--merge-base", "main", "feature"}, {"main...feature"}} {
		r := report(args...)
		if want := (diff.Counts{Changed: 2, Stale: 2}); r.Totals != want {
			t.Errorf("diff %v: totals %+v, want %+v", args, r.Totals, want)
		}
		if !strings.HasPrefix(r.Base.Label, "merge base of main and feature") {
			t.Errorf("diff %v: base labelled %q", args, r.Base.Label)
		}
	}
	// A branch off the experiments commit, from before main's results
	// landed: the merge base holds no results, main does. The base's runs
	// are the merge base's, with their results as main holds them (CI saw
	// every base run "pending" when the merge base's own tree was read).
	l.Git(l.Peer, "branch", "early", experiments)
	if r := report("main...early"); r.Totals != (diff.Counts{Unchanged: 2}) {
		t.Errorf("diff main...early: totals %+v, want both runs unchanged (the base's results are main's)", r.Totals)
	}
	// --base-results still names where the base's results are.
	if r := report("--merge-base", "main", "early", "--base-results", "early", "--head-results", "main"); r.Totals != (diff.Counts{Changed: 2}) {
		t.Errorf("diff --merge-base main early --base-results early --head-results main: totals %+v, want 2 changed from pending", r.Totals)
	}
	if r := report("main", "feature"); r.Totals.Removed != 1 || r.Totals.Changed != 2 {
		t.Errorf("diff main feature: totals %+v, want main's later run removed and 2 changed", r.Totals)
	}

	// Text and Markdown name the change.
	code, stdout, _ := labCLI(t, "diff", "--repo", l.Peer, "--key", pub, "main...feature")
	if code != 0 || !strings.Contains(stdout, "CHANGED") || !strings.Contains(stdout, "loss") || !strings.Contains(stdout, "1 → 2 (+1, +100.00%)") {
		t.Errorf("text diff (exit %d):\n%s", code, stdout)
	}
	code, stdout, _ = labCLI(t, "diff", "--repo", l.Peer, "--key", pub, "-o", "markdown", "main...feature")
	if code != 0 || !strings.Contains(stdout, "| seed | run (base → head) | status | loss |") {
		t.Errorf("markdown diff (exit %d):\n%s", code, stdout)
	}

	// Usage and unreadable sides.
	for _, c := range []struct {
		args []string
		code int
		says string
	}{
		{[]string{"diff", "--repo", l.Peer, "main", "feature"}, 2, "--key"},
		{[]string{"diff", "--repo", l.Peer, "--key", pub, "main"}, 2, "BASE and HEAD"},
		{[]string{"diff", "--repo", l.Peer, "--key", pub, "-o", "html", "main", "feature"}, 2, "-o"},
		{[]string{"diff", "--repo", l.Peer, "--key", pub, "main", "no-such-branch"}, 1, "no-such-branch"},
	} {
		code, _, stderr := labCLI(t, c.args...)
		if code != c.code || !strings.Contains(stderr, c.says) {
			t.Errorf("%v: exit %d, %q; want exit %d naming %q", c.args, code, stderr, c.code, c.says)
		}
	}
}

func writeFile(t *testing.T, dir, name, content string) {
	t.Helper()
	p := filepath.Join(dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
