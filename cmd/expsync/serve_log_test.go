package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/logging"
)

// TestServeLoggerRedactsTheConfiguredCredentials: serve's logger knows the
// values of the variables its configuration names for passwords and tokens
// (Git and forge) and removes them from every line, whichever format.
func TestServeLoggerRedactsTheConfiguredCredentials(t *testing.T) {
	t.Setenv("LAB_SERVE_TOKEN", "tok-3f9a61c2")
	t.Setenv("LAB_FORGE_TOKEN", "forge-77aa01")
	dir := t.TempDir()
	file := filepath.Join(dir, "serve.yaml")
	if err := os.WriteFile(file, []byte(`key: k
repositories:
  - url: https://git.example.org/lab/exp.git
    auth: {usernameEnv: U, tokenEnv: LAB_SERVE_TOKEN}
    forge: {kind: gitea, url: https://git.example.org, repository: lab/exp, tokenEnv: LAB_FORGE_TOKEN}
    refs: [{pattern: main, trusted: true}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := deploy.LoadConfig(file)
	if err != nil {
		t.Fatal(err)
	}
	for _, format := range logging.Formats {
		var out bytes.Buffer
		l, err := serveLogger(&out, format, cfg)
		if err != nil {
			t.Fatal(err)
		}
		l.Error("poll failed", logging.Repository, cfg.Repositories[0].URL,
			"err", fmt.Errorf("fetch: token %s refused; forge said %q", "tok-3f9a61c2", "forge-77aa01"))
		got := out.String()
		if strings.Contains(got, "tok-3f9a61c2") || strings.Contains(got, "forge-77aa01") {
			t.Errorf("%s: a credential is in serve's log:\n%s", format, got)
		}
		if !strings.Contains(got, "https://git.example.org/lab/exp.git") || strings.Count(got, "[REDACTED]") != 2 {
			t.Errorf("%s: want the repository and two markers:\n%s", format, got)
		}
		if format == logging.JSON {
			var rec map[string]any
			if err := json.Unmarshal(out.Bytes(), &rec); err != nil || rec[logging.Repository] == nil || rec["msg"] != "poll failed" {
				t.Errorf("json: not one object with msg and repository (%v): %s", err, got)
			}
		}
	}
	if _, err := serveLogger(&bytes.Buffer{}, "xml", cfg); err == nil {
		t.Error("serveLogger accepted the format xml")
	}
}

// TestServeRefusesAnUnknownLogFormat: exit 2 naming the flag, before
// anything starts.
func TestServeRefusesAnUnknownLogFormat(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "serve.yaml")
	os.WriteFile(file, []byte("key: k\nstore: s\nstate: st\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}]}]\n"), 0o600)
	err := (&serveOptions{Config: file, LogFormat: "xml"}).Exec(t.Context(), &bytes.Buffer{})
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "--log-format") {
		t.Errorf("Exec with --log-format xml: %v, want exit 2 naming --log-format", err)
	}
}
