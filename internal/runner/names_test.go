package runner

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
)

// TestSecretInAnOutputNameIsNeverRecorded (issue 9, item 1): a run that
// puts a secret's value into the name of an output file or folder had it
// recorded in the manifest, and so committed in the path under outputs/,
// in run.json and in the statement's subjects (also for an output too
// large to commit, recorded by digest). Such files are left out whole; the
// run fails naming the declared output and the variable, never the name.
func TestSecretInAnOutputNameIsNeverRecorded(t *testing.T) {
	const secret, operator = "tok-4f9a2c7e", "opcred-77aa21"
	t.Setenv("EXPSYNC_GIT_TOKEN", operator)
	for _, tc := range []struct {
		name, script string
		outputs      []string
		wantInError  []string
		wantOutputs  []string
	}{
		{name: "a file", script: `mkdir -p out; echo x > "out/res-$TOK.txt"; echo ok > out/ok.txt`,
			outputs: []string{"out/"}, wantOutputs: []string{"out/ok.txt"},
			wantInError: []string{"output out/ holds 1 file(s) whose names contain the value of secret variable TOK"}},
		{name: "a folder", script: `mkdir -p "out/$TOK/deep"; echo a > "out/$TOK/a"; echo b > "out/$TOK/deep/b"`,
			outputs:     []string{"out/"},
			wantInError: []string{"output out/ holds 2 file(s) whose names contain the value of secret variable TOK"}},
		{name: "a large file", script: `mkdir -p out; head -c 3000000 /dev/zero > "out/$TOK.bin"`,
			outputs:     []string{"out/"},
			wantInError: []string{"output out/ holds 1 file(s)"}},
		{name: "a symlink", script: `mkdir -p out; ln -s /etc/hostname "out/$TOK"`,
			outputs:     []string{"out/"},
			wantInError: []string{"output out/ holds 1 file(s)"}},
		{name: "an operator credential the run read", script: `mkdir -p out; echo x > "out/$OP"`,
			outputs:     []string{"out/"},
			wantInError: []string{"output out/ holds 1 file(s) whose names contain the value of operator credential EXPSYNC_GIT_TOKEN"}},
		{name: "a failed run", script: `mkdir -p out; echo x > "out/$TOK"; exit 4`,
			outputs:     []string{"out/"},
			wantInError: []string{"exit code 4", "output out/ holds 1 file(s)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.opts.Secrets = func(string, string) (string, bool, error) { return secret, true, nil }
			res := f.run(shell(tc.script).secret("TOK", "lab", "api").env("OP", operator).outputs(tc.outputs...).build())
			if res.Status != contract.Failed {
				t.Errorf("status %s (%s), want Failed", res.Status, res.Error)
			}
			var got []string
			for _, o := range res.Outputs {
				got = append(got, o.Path)
			}
			if strings.Join(got, ",") != strings.Join(tc.wantOutputs, ",") {
				t.Errorf("outputs %v, want %v", got, tc.wantOutputs)
			}
			for _, part := range tc.wantInError {
				if !strings.Contains(res.Error, part) {
					t.Errorf("error %q lacks %q", res.Error, part)
				}
			}
			data, _ := json.Marshal(res)
			for _, v := range []string{secret, operator} {
				if strings.Contains(string(data), v) {
					t.Errorf("the result holds a secret's value: %s", data)
				}
			}
		})
	}
}

// TestOutputNamesGitRefusesOnSomePlatform (issue 9, item 3): names that
// Linux accepts but that break the checkout of every later clone
// somewhere — .git in its NTFS and HFS+ spellings, Windows device names and
// characters, a name ending in a space or a period, a .gitattributes that
// would change how the run's files check out — fail the run and are left
// out. TestCheckGitPath holds the rules to git's own vectors.
func TestOutputNamesGitRefusesOnSomePlatform(t *testing.T) {
	f := newFixture(t)
	names := []string{"git~1/x", ".git./x", ".git /x", ".g\u200cit/x", "GIT~1", "aux.txt", "a:b", "q?", "end.", "end ", ".gitattributes", "sub/GITATT~1"}
	script := "mkdir -p out; cd out; echo ok > ok.txt"
	for _, n := range names {
		if i := strings.LastIndex(n, "/"); i > 0 {
			script += "; mkdir -p '" + n[:i] + "'"
		}
		script += "; echo x > '" + n + "'"
	}
	res := f.run(shell(script).outputs("out/").build())
	if res.Status != contract.Failed {
		t.Fatalf("status %s: %s", res.Status, res.Error)
	}
	if len(res.Outputs) != 1 || res.Outputs[0].Path != "out/ok.txt" {
		t.Errorf("outputs %+v, want out/ok.txt alone", res.Outputs)
	}
	if !strings.Contains(res.Error, "and 2 more problem(s)") || !strings.Contains(res.Error, "is left out") {
		t.Errorf("error %q: want the first ten names and a count of the others", res.Error)
	}
}

// TestTooManyOutputFilesFailTheRun (issue 9, item 4): a run with more
// output files than the limit fails naming the limit and how to change
// it, and stops hashing at the limit; the contract can lower the limit.
func TestTooManyOutputFilesFailTheRun(t *testing.T) {
	f := newFixture(t)
	res := f.run(shell(`mkdir out; cd out; i=0; while [ $i -lt 40 ]; do : > f$i; i=$((i+1)); done`).outputs("out/").
		limits(func(l *contract.Limits) { l.MaxOutputFiles = 25 }).build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "outputs hold more than 25 files") || !strings.Contains(res.Error, "limits.maxOutputFiles") {
		t.Fatalf("status %s error %q, want a failure naming the limit", res.Status, res.Error)
	}
	if len(res.Outputs) > 25 {
		t.Errorf("%d outputs recorded, want at most 25", len(res.Outputs))
	}
	// A contract cannot raise it above the builtin limit.
	c := shell(`true`).limits(func(l *contract.Limits) { l.MaxOutputFiles = contract.MaxOutputFiles * 2 }).build()
	r := &attemptRunner{c: c}
	if got := r.outputFilesLimit(); got != contract.MaxOutputFiles {
		t.Errorf("outputFilesLimit %d, want %d", got, contract.MaxOutputFiles)
	}
}

// TestOutputNamesTooLongInAll: names that are each fine but hold more than
// MaxOutputNameBytes in all fail the run (they are listed in run.json and
// the statement).
func TestOutputNamesTooLongInAll(t *testing.T) {
	if testing.Short() {
		t.Skip("writes 4,500 files")
	}
	f := newFixture(t)
	long := strings.Repeat("n", 240)
	// 4,500 files of ~250 bytes: 1.1 MB of names, under the file count.
	res := f.run(shell(`mkdir -p out/a out/b out/c; for d in a b c; do i=0; while [ $i -lt 1500 ]; do : > out/$d/${i}` + long + `; i=$((i+1)); done; done`).
		outputs("out/").timeout(2 * time.Minute).build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "names of the output files exceed") {
		t.Fatalf("status %s error %q", res.Status, res.Error)
	}
}

// TestRecordedMessagesAreCut: a message recorded in run.json is cut to
// MaxMessageBytes (thousands of problems, a metrics key of a megabyte).
func TestRecordedMessagesAreCut(t *testing.T) {
	f := newFixture(t)
	key := strings.Repeat("k", 100_000)
	res := f.run(shell(`printf '{"` + key + `": "x"}' > m.json; exit 1`).metrics("m.json").build())
	if len(res.MetricsError) > contract.MaxMessageBytes || !strings.Contains(res.MetricsError, "message cut") {
		t.Errorf("metrics error of %d bytes: %.80q…", len(res.MetricsError), res.MetricsError)
	}
	if len(res.Error) > contract.MaxMessageBytes {
		t.Errorf("error of %d bytes", len(res.Error))
	}
}

// TestRelativeWorkRootGivesAbsoluteHome: with a relative work root (expsync
// run --state state), HOME and TMPDIR were relative to expsync's working
// folder while the command runs in the attempt folder: $HOME pointed
// nowhere. They are absolute, and HOME is the command's own folder.
func TestRelativeWorkRootGivesAbsoluteHome(t *testing.T) {
	f := newFixture(t)
	base := t.TempDir()
	t.Chdir(base)
	f.opts.WorkRoot = "rel/work"
	res := f.run(shell(`[ "$HOME" = "$(pwd -P)" ] || exit 7; [ "$TMPDIR" = "$HOME" ] || exit 8; case "$HOME" in /*) ;; *) exit 9;; esac; echo "$HOME" > h.txt`).outputs("h.txt").build())
	if res.Status != contract.Succeeded {
		t.Fatalf("status %s: %s (HOME was not the command's absolute folder)", res.Status, res.Error)
	}
}

// TestSecretWithSurroundingWhitespace (issue 9, item 1, hostile re-attack):
// secret values often end in a newline (a Kubernetes Secret made with
// --from-file, a file written by echo, a YAML block scalar), and what the
// run uses is the value without it: a shell's $(...) or a program's
// strip() removes it. The value as stored was matched only, so the bare
// token in a file name, a log line or an output's content was recorded.
func TestSecretWithSurroundingWhitespace(t *testing.T) {
	const bare = "tok-4f9a2c7e"
	f := newFixture(t)
	f.opts.Secrets = func(string, string) (string, bool, error) { return " " + bare + "\n", true, nil }
	res := f.run(shell(`T=$(printf %s "$TOK" | tr -d ' ')
mkdir -p out; echo x > "out/res-$T.txt"; echo ok > out/ok.txt; printf %s "$T" > out/val.txt
echo "token=$T"`).secret("TOK", "lab", "api").outputs("out/").build())
	if res.Status != contract.Failed || !strings.Contains(res.Error, "whose names contain the value of secret variable TOK") {
		t.Errorf("status %s (%s), want Failed naming the output whose name holds the value", res.Status, res.Error)
	}
	data, _ := json.Marshal(res)
	if strings.Contains(string(data), bare) {
		t.Errorf("the result holds the secret's value: %s", data)
	}
	if log := f.blob(res.LogSHA256); strings.Contains(log, bare) {
		t.Errorf("the log holds the secret's value: %q", log)
	}
	for _, o := range res.Outputs {
		if o.Path == "out/val.txt" && !slices.Contains(res.Withheld, o.Path) {
			t.Errorf("out/val.txt holds the secret's value and is not withheld (withheld: %v)", res.Withheld)
		}
	}
}
