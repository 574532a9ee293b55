package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/internal/gitpeer"
)

// TestServeRedactsTheRepositoryCredentials: serve reads a repository's
// password from the variable its auth names (any name, not only
// EXPSYNC_*). A run can read expsync's environment (/proc/<ppid>/environ:
// root, or kernels that allow it), so that value is redacted from every
// run's log and withheld from its outputs like expsync's own credentials;
// before, a run printing it committed the password in log.txt.
func TestServeRedactsTheRepositoryCredentials(t *testing.T) {
	const password = "labtoken-f00d-c0ffee"
	l := &lab{gitpeer.New(t, &gitpeer.Auth{Username: "lab", Password: password})}
	// The run prints the password as a run reading it from expsync's
	// environment would (in two pieces, so the command recorded in run.json
	// does not hold it).
	l.Commit("leaky", map[string]string{"experiments/leaky.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: leaky
spec:
  image: host
  command: ["sh", "-c", "printf 'token=%s%s\\n' labtoken-f00d -c0ffee; echo ok > out.txt"]
  outputs: [out.txt]
  resources: {cpu: 100m}
`})
	t.Setenv("LAB_GIT_USER", "lab")
	t.Setenv("LAB_GIT_TOKEN", password)
	key, _ := labKeyPair(t)
	dir := t.TempDir()
	config := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(config, []byte(fmt.Sprintf(`store: %s
state: %s
key: %s
interval: 300ms
batchInterval: 300ms
repositories:
  - url: %s
    allowHTTP: true
    auth: {usernameEnv: LAB_GIT_USER, passwordEnv: LAB_GIT_TOKEN}
    refs:
      - {pattern: main, trusted: true}
`, filepath.Join(dir, "store"), filepath.Join(dir, "state"), key, l.URL())), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var mu sync.Mutex
	var log bytes.Buffer
	done := make(chan error, 1)
	go func() { done <- (&serveOptions{Config: config}).Exec(ctx, lockedWriter{&mu, &log}) }()
	logged := func() string { mu.Lock(); defer mu.Unlock(); return log.String() }
	waitFor(t, "the run's results on main", 60*time.Second, func() bool { return len(l.folders("leaky")) == 1 }, logged)
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("serve: %v\n%s", err, logged())
	}
	folder := l.folders("leaky")[0]
	logTxt, err := os.ReadFile(filepath.Join(folder, "log.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(logTxt), "token=[REDACTED]") {
		t.Errorf("log.txt: %q, want the password redacted", logTxt)
	}
	err = filepath.Walk(filepath.Dir(filepath.Dir(folder)), func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		if data, _ := os.ReadFile(p); bytes.Contains(data, []byte(password)) {
			t.Errorf("the repository password was committed in %s", p)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(logged(), password) {
		t.Errorf("the password is in serve's log:\n%s", logged())
	}
}

// lockedWriter serialises writes to w.
type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
