package logging

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/go-logr/logr"

	"github.com/expsync/expsync/internal/redact"
)

// TestRedactingLogsNoSecret logs a secret every way a caller could (the
// message, a key, a string, an error quoting it, a struct, a group, With,
// WithGroup, through the logr bridge the controller uses) and a URL with
// a password nobody listed, in text and JSON: none may reach the output,
// and what is not secret must.
func TestRedactingLogsNoSecret(t *testing.T) {
	const token = "ghp_s3cr3t-T0KEN"
	const pass = "hunter2\"quoted" // %q of it differs from it
	type creds struct{ User, Token string }
	for _, format := range Formats {
		t.Run(format, func(t *testing.T) {
			var out bytes.Buffer
			base, err := New(&out, format, slog.LevelDebug)
			if err != nil {
				t.Fatal(err)
			}
			l := Redacting(base, []string{pass, token, ""})
			l.Info("push with "+token+" refused", Repository, "https://example.org/lab/exp.git")
			l.Info("values", "token", token, "err", fmt.Errorf("auth %q: denied", pass), "creds", creds{"ann", token})
			l.Info("key", token, 1)
			l.With("auth", token).WithGroup("g-"+token).Info("with", "inner", slog.GroupValue(slog.String("t", token)))
			l.Error("clone", "err", errors.New(`Get "https://ann:unlisted-pw@git.example.org/x.git": EOF`))
			Logr(l).V(0).Info("logr "+token, "token", token)
			FromLogr(Logr(l)).Warn("round trip", "token", token)
			got := out.String()
			for _, secret := range []string{token, pass, fmt.Sprintf("%q", pass), "unlisted-pw"} {
				if strings.Contains(got, secret) {
					t.Errorf("%s output holds %q:\n%s", format, secret, got)
				}
			}
			for _, want := range []string{"https://example.org/lab/exp.git", "ann:" + redact.Marker + "@git.example.org", "User:ann", "round trip"} {
				if !strings.Contains(got, want) {
					t.Errorf("%s output lost %q:\n%s", format, want, got)
				}
			}
			if n := strings.Count(got, redact.Marker); n < 12 {
				t.Errorf("%d markers, want one per secret logged (12 or more):\n%s", n, got)
			}
		})
	}
}

// TestRedactingKeepsLevelsOfTheBridge: a logr V(1) record stays at debug
// through the redacting handler, so --log-level info hides it.
func TestRedactingKeepsLevelsOfTheBridge(t *testing.T) {
	var out bytes.Buffer
	base, _ := New(&out, Text, slog.LevelInfo)
	var l logr.Logger = Logr(Redacting(base, []string{"x1"}))
	l.V(1).Info("hidden")
	l.Info("shown")
	if got := out.String(); strings.Contains(got, "hidden") || !strings.Contains(got, "shown") {
		t.Errorf("levels lost through the bridge:\n%s", got)
	}
}
