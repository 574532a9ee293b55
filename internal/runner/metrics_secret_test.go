package runner

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
)

// TestMetricsErrorNeverNamesASecret: the reason a metrics file was not
// recorded (Result.MetricsError) is committed in run.json, and it quotes
// the run's own keys ('metric "K" is string'): a run that wrote a secret's
// value as a key, or a name holding it, had that value committed. Secret
// values are redacted from it as from the log, also where %q escaped them.
func TestMetricsErrorNeverNamesASecret(t *testing.T) {
	for _, c := range []struct{ name, secret, metrics string }{
		{"a key", "s3cr3t-value-91f2", `{"s3cr3t-value-91f2": "x"}`},
		{"a key, escaped by %q", `s3cr"t-value-91f2`, `{"s3cr\"t-value-91f2": "x"}`},
		{"a key that is not a number's", "s3cr3t-value-91f2", `{"loss": 1, "s3cr3t-value-91f2": true}`},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFixture(t)
			f.opts.Secrets = func(string, string) (string, bool, error) { return c.secret, true, nil }
			res := f.run(shell(`printf '%s' "$M" > m.json`).env("M", c.metrics).metrics("m.json").secret("API_TOKEN", "a", "b").build())
			if res.MetricsError == "" {
				t.Fatalf("no metrics error for %s (status %s: %s)", c.metrics, res.Status, res.Error)
			}
			data, _ := json.Marshal(res)
			for _, text := range []string{string(data), res.MetricsError} {
				for _, form := range []string{c.secret, strings.Trim(strconv.Quote(c.secret), `"`)} {
					if strings.Contains(text, form) {
						t.Errorf("the result holds the secret (%s): %s", form, res.MetricsError)
					}
				}
			}
		})
	}
}

// TestResultErrorNeverNamesASecret: a result's error, committed as the
// reason in run.json, may name a file the run made inside an output
// folder ("outputs exceed the limit: o/<name> alone has ..."); a run that
// named a file after a secret's value had it committed.
func TestResultErrorNeverNamesASecret(t *testing.T) {
	const secret = "s3cr3t-value-91f2"
	f := newFixture(t)
	f.opts.Secrets = func(string, string) (string, bool, error) { return secret, true, nil }
	res := f.run(shell(`mkdir o; head -c 4096 /dev/zero > "o/$API_TOKEN"`).outputs("o/").
		limits(func(l *contract.Limits) { l.MaxOutputBytes = 1024 }).secret("API_TOKEN", "a", "b").build())
	// The file's name holds the secret: it is left out before its size
	// is looked at, and the error names the declared output instead.
	if res.Status != contract.Failed || !strings.Contains(res.Error, "output o/ holds 1 file(s) whose names contain the value of secret variable API_TOKEN") {
		t.Fatalf("status %s error %q, want the file left out, named by its declared output", res.Status, res.Error)
	}
	if strings.Contains(res.Error, secret) {
		t.Errorf("the result's error holds the secret: %s", res.Error)
	}
}
