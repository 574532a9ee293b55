package main

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/expsync/expsync/internal/gitpeer"
)

// TestServeCommitsResultsWhileTheForgeFails: with a forge that answers
// every API request with 500 or 429 (and echoes the token in its error
// page, as a misconfigured proxy might), `expsync serve` still runs a pull
// request's runs and commits their results to its results branch — the
// forge delays the status, never the results commit — keeps the token out
// of its log and of the run's (which prints it), and stops promptly on
// SIGTERM while the forge still fails.
func TestServeCommitsResultsWhileTheForgeFails(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and runs serve")
	}
	const token = "forge-token-5e1d0c9b8a7f"
	var requests atomic.Int64
	down := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if requests.Add(1)%2 == 0 {
			w.Header().Set("Retry-After", "1")
			w.WriteHeader(http.StatusTooManyRequests)
		} else {
			w.WriteHeader(http.StatusInternalServerError)
		}
		fmt.Fprintf(w, "<html>upstream down; you sent %s</html>", r.Header.Get("Authorization"))
	}))
	defer down.Close()

	l := newLab(t)
	l.Commit("experiment", map[string]string{"experiments/e.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: e
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out && echo {{params.x}} > out/x.txt"]
  params: {x: 1}
  outputs: [out/x.txt]
  timeout: 1m
`})
	// A pull request's head, as a forge publishes it. Its run prints the
	// forge token, as a run reading serve's environment would (in two
	// pieces, so the command recorded in run.json does not hold it).
	l.Git(l.Peer, "checkout", "-q", "-b", "feature")
	spec := strings.Replace(readFile(t, filepath.Join(l.Peer, "experiments/e.yaml")), "x: 1", "x: 2", 1)
	spec = strings.Replace(spec, "> out/x.txt", "> out/x.txt && printf 'token=%s%s\\n' forge-token- 5e1d0c9b8a7f", 1)
	writeFile(t, l.Peer, "experiments/e.yaml", spec)
	l.Git(l.Peer, "commit", "-q", "-am", "x: 2")
	l.Git(l.Peer, "push", "-q", "origin", "HEAD:refs/pull/7/head")

	key, _ := labKeyPair(t)
	dir := t.TempDir()
	writeFile(t, dir, "serve.yaml", "store: store\nstate: state\nkey: "+key+"\ninterval: 500ms\nbatchInterval: 500ms\n"+
		"repositories:\n"+
		"  - url: "+l.URL()+"\n"+
		"    allowHTTP: true\n"+
		"    refs:\n"+
		"      - {pattern: main, trusted: true}\n"+
		"      - {pattern: \"refs/pull/*/head\", trusted: true, resultsBranch: \"expsync/results/pr-{{number}}\"}\n"+
		"    forge: {kind: gitea, url: \""+down.URL+"\", repository: lab/exps}\n")
	t.Setenv("EXPSYNC_FORGE_TOKEN", token)
	serve := startServe(t, filepath.Join(dir, "serve.yaml"))

	resultsBranch := func() bool {
		out, err := gitLsRemote(l.Peer, "refs/heads/expsync/results/pr-7")
		return err == nil && out != ""
	}
	waitFor(t, "the pull request's results commit", 3*time.Minute, resultsBranch, serve.output)
	waitFor(t, "serve to try the forge", time.Minute, func() bool { return requests.Load() > 0 }, serve.output)
	waitFor(t, "serve to log the failing forge", time.Minute, func() bool { return strings.Contains(serve.output(), "report not posted") }, serve.output)

	clone := filepath.Join(t.TempDir(), "pr")
	l.Git(filepath.Dir(clone), "clone", "-q", "--branch", "expsync/results/pr-7", l.URL(), clone)
	runs, _ := filepath.Glob(filepath.Join(clone, "results", "e", "*", "outputs", "out", "x.txt"))
	if len(runs) != 1 || strings.TrimSpace(readFile(t, runs[0])) != "2" {
		t.Fatalf("the results branch holds %d runs of e (want the pull request's one, x=2): %v", len(runs), runs)
	}
	if log := readFile(t, filepath.Join(filepath.Dir(filepath.Dir(filepath.Dir(runs[0]))), "log.txt")); !strings.Contains(log, "token=[REDACTED]") {
		t.Errorf("log.txt: %q, want the forge token redacted", log)
	}
	filepath.Walk(clone, func(p string, fi os.FileInfo, err error) error {
		if err == nil && fi.IsDir() && fi.Name() == ".git" {
			return filepath.SkipDir
		}
		if err == nil && !fi.IsDir() && strings.Contains(readFile(t, p), token) {
			t.Errorf("%s holds the forge token", p)
		}
		return nil
	})

	start := time.Now()
	serve.stop(t)
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("serve took %s to stop while the forge failed", d)
	}
	if strings.Contains(serve.output(), token) {
		t.Errorf("the forge token is in serve's log:\n%s", serve.output())
	}
}

func gitLsRemote(dir, ref string) (string, error) {
	return gitpeer.Git(dir, "ls-remote", "origin", ref)
}

func readFile(t *testing.T, name string) string {
	t.Helper()
	data, err := os.ReadFile(name)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
