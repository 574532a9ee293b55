package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestServeAuditsRuns: `expsync serve` with audit fraction 1 runs a sweep,
// then re-executes each of its runs from its attestation, one per
// reconcile, committing a signed statement per run that `expsync verify`
// checks, and the experiment's README lists them; the statements commit
// nothing new to run (the runs stay done).
func TestServeAuditsRuns(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and runs serve")
	}
	l := newLab(t)
	marker := filepath.Join(t.TempDir(), "marker")
	l.Commit("sweep", slowExperiment(marker, "1, 2, 3", 0))
	key, pub := labKeyPair(t)
	config := writeServeConfig(t, l, key)
	data, _ := os.ReadFile(config)
	os.WriteFile(config, []byte(strings.Replace(string(data), "repositories:", "audit: {fraction: 1, perBranch: 1}\nrepositories:", 1)), 0o644)

	p := startServe(t, config)
	statements := func() []string {
		clone := l.Clone()
		files, _ := filepath.Glob(filepath.Join(clone, "results", "slow", "*", "reproductions", "*.intoto.jsonl"))
		return files
	}
	waitFor(t, "three reproduction statements", 4*time.Minute, func() bool { return len(statements()) == 3 }, p.output)
	p.stop(t)

	clone := l.Clone()
	code, out, stderr := runBinary(t, "verify", "--key", pub, "--repo", clone, filepath.Join(clone, "results"))
	if code != 0 || !strings.Contains(out, "3 verified, 0 failed") || strings.Count(out, "reproduction ") != 0 {
		t.Errorf("expsync verify exited %d:\n%s\n%s", code, out, stderr)
	}
	readme, _ := os.ReadFile(filepath.Join(clone, "results", "slow", "README.md"))
	if !strings.Contains(string(readme), "3 reproductions of these runs") || !strings.Contains(string(readme), "3 identical") {
		t.Errorf("README does not list the audit:\n%s", readme)
	}
	if n := len(readMarker(t, marker)); n != 2*3*2 {
		t.Errorf("marker has %d lines, want a start and an end per run and per reproduction (12)", n)
	}
	if log := p.output(); !strings.Contains(log, `msg="audit: run reproduced"`) || !strings.Contains(log, "verdict=identical") {
		t.Errorf("serve log does not report the audit:\n%s", log)
	}
}
