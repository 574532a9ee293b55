package runner

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/contract"
)

// TestSecretsInOutputsOrMetricsAreWithheld: an output or a
// metrics file holding a secret's value fails the run with a message that
// names the file and the variable (never the value), and the output is
// marked not committable.
func TestSecretsInOutputsOrMetricsAreWithheld(t *testing.T) {
	const secret = "S3CR3T-VALUE-xyz"
	for _, tc := range []struct {
		name, script  string
		outputs       []string
		metrics       string
		wantWithheld  []string
		wantInError   []string
		wantMetricErr bool
	}{
		{name: "output holds the secret",
			script:  `mkdir -p out; echo "$API_TOKEN" > out/tok.txt; echo fine > out/ok.txt`,
			outputs: []string{"out/"}, wantWithheld: []string{"out/tok.txt"},
			wantInError: []string{"output out/tok.txt holds the value of secret variable API_TOKEN"}},
		{name: "secret cut by the scanner's chunk boundary",
			script:  `head -c 65530 /dev/zero > big.bin; printf %s "$API_TOKEN" >> big.bin; head -c 1000 /dev/zero >> big.bin`,
			outputs: []string{"big.bin"}, wantWithheld: []string{"big.bin"},
			wantInError: []string{"output big.bin holds the value of secret variable API_TOKEN"}},
		{name: "metrics file holds the secret as a key",
			script:  `echo "{\"$API_TOKEN\": 1}" > m.json`,
			metrics: "m.json", wantMetricErr: true,
			wantInError: []string{"metrics file m.json holds the value of secret variable API_TOKEN; not recorded"}},
		{name: "failed run: still withheld",
			script:  `echo "$API_TOKEN" > tok.txt; exit 3`,
			outputs: []string{"tok.txt"}, wantWithheld: []string{"tok.txt"},
			wantInError: []string{"exit code 3", "output tok.txt holds the value of secret variable API_TOKEN"}},
		{name: "no secret written",
			script:  `echo fine > ok.txt; echo '{"acc": 1}' > m.json`,
			outputs: []string{"ok.txt"}, metrics: "m.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.opts.Secrets = func(string, string) (string, bool, error) { return secret, true, nil }
			b := shell(tc.script).secret("API_TOKEN", "lab-tokens", "api").outputs(tc.outputs...)
			if tc.metrics != "" {
				b.metrics(tc.metrics)
			}
			res := f.run(b.build())
			if diff := cmp.Diff(tc.wantWithheld, res.Withheld); diff != "" {
				t.Errorf("withheld (-want +got):\n%s", diff)
			}
			for _, o := range res.Outputs {
				want := !strings.Contains(f.blob(o.SHA256), secret)
				if res.Committable(o.Path) != want {
					t.Errorf("Committable(%s) = %v", o.Path, !want)
				}
			}
			if len(tc.wantInError) == 0 {
				if res.Status != contract.Succeeded {
					t.Errorf("status %s: %s", res.Status, res.Error)
				}
			} else if res.Status != contract.Failed {
				t.Errorf("status %s, want Failed", res.Status)
			}
			for _, part := range tc.wantInError {
				if !strings.Contains(res.Error, part) {
					t.Errorf("error %q lacks %q", res.Error, part)
				}
			}
			if tc.wantMetricErr && (res.Metrics != nil || res.MetricsSHA256 != "" || res.MetricsError == "") {
				t.Errorf("metrics %v sha %q error %q; want them dropped with a reason", res.Metrics, res.MetricsSHA256, res.MetricsError)
			}
			data, _ := json.Marshal(res)
			if strings.Contains(string(data), secret) {
				t.Errorf("the secret's value is in the result: %s", data)
			}
		})
	}
}

// TestOutputNamesGitCannotCommitFailTheRun: an output under a
// .git folder (any case), or named with a backslash or bytes that are not
// UTF-8, would fail every results commit of the branch (or the run's
// signature): the run fails naming it, and it is left out of the manifest.
func TestOutputNamesGitCannotCommitFailTheRun(t *testing.T) {
	f := newFixture(t)
	res := f.run(shell(`mkdir -p out/.GIT; echo hi > out/.GIT/x; echo a > 'out/we ird\name.txt'; echo b > "out/$(printf 'l\377')"; echo ok > out/ok.txt`).outputs("out/").build())
	if res.Status != contract.Failed {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	var paths []string
	for _, o := range res.Outputs {
		paths = append(paths, o.Path)
	}
	if diff := cmp.Diff([]string{"out/ok.txt"}, paths); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	for _, part := range []string{`"out/.GIT/x" is left out: ".GIT" is Git's own folder`, `"out/we ird\\name.txt" is left out: "we ird\\name.txt" has the character '\\'`, `is left out: its name is not UTF-8`} {
		if !strings.Contains(res.Error, part) {
			t.Errorf("error %q lacks %q", res.Error, part)
		}
	}
}

// TestOperatorCredentialsAreRedactedAndWithheld: a run can
// read expsync's environment (/proc/<ppid>/environ, same user), so every
// operator credential is redacted from its log and withheld from its
// outputs, whether the run declared it or not. The command gets the value
// through a plain variable here, as it would by reading /proc.
func TestOperatorCredentialsAreRedactedAndWithheld(t *testing.T) {
	const token, other, extra = "GitTokSECRET77", "OtherSECRET88", "passw0rd-from-elsewhere"
	t.Setenv("EXPSYNC_GIT_TOKEN", token)
	t.Setenv("EXPSYNC_SECRET_OTHER_K", other)
	t.Setenv("EXPSYNC_GIT_USERNAME", "expsync-bot") // not a credential: stays readable
	f := newFixture(t)
	f.opts.Redact = []string{extra}
	res := f.run(shell(`echo "$A $B $C $U"; mkdir -p out; echo "$A" > out/tok.txt; echo fine > out/ok.txt`).
		env("A", token).env("B", other).env("C", extra).env("U", "expsync-bot").outputs("out/").build())
	log := f.blob(res.LogSHA256)
	if log != "[REDACTED] [REDACTED] [REDACTED] expsync-bot\n" {
		t.Errorf("log %q", log)
	}
	if diff := cmp.Diff([]string{"out/tok.txt"}, res.Withheld); diff != "" {
		t.Errorf("withheld (-want +got):\n%s", diff)
	}
	if res.Status != contract.Failed || !strings.Contains(res.Error, "output out/tok.txt holds the value of operator credential EXPSYNC_GIT_TOKEN") {
		t.Errorf("status %s error %q", res.Status, res.Error)
	}
	data, _ := json.Marshal(res)
	for _, v := range []string{token, other, extra} {
		if strings.Contains(string(data), v) {
			t.Errorf("a credential is in the result: %s", data)
		}
	}
}
