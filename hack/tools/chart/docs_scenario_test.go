package chart

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
)

// The user guides' commands (expsync run, verify, diff, reproduce, git,
// cosign) run in a scenario: what a reader of the docs has in front of
// them after the quickstart. It is built once per test binary:
//
//	exps.git          a bare remote holding examples/experiments on main,
//	                  run once by `expsync run` (results committed back), a
//	                  pull request refs/pull/8/head (one more pi seed) and its
//	                  results branch expsync/results/pr-8 (run the same way)
//	clone/            a clone of it on main; branches pr-8-head and
//	                  pr-8-results, tags v1 (main) and v2 (the pull
//	                  request's results), and results-before/ results-after/
//	                  (the results folders of v1 and v2)
//	keys/             lab.key/lab.pub (the lab's key, which signed the runs),
//	                  me.key/me.pub (a reviewer's key); EXPSYNC_PASSWORD=""
//	store/, state/    the store and state of those runs
//	home/             $HOME of every command (so defaults never touch the
//	                  machine's ~/.cache/expsync)
//
// Each Markdown file gets a copy of it (commands of one file run in order,
// sharing it: a reproduction written by one is verified by the next).
// The docs' placeholders are replaced before a command runs
// (placeholders, below): a documented command may name the lab's Git
// server or a run folder by example, never a flag or a subcommand.
type scenario struct {
	dir   string // root of the copy
	clone string
	env   []string
	run   string // results/pi-montecarlo/<run id> of main
}

// placeholder is a pattern of the docs and what it stands for in the scenario.
type placeholder struct {
	pattern *regexp.Regexp
	value   func(s *scenario) string
}

var placeholders = []placeholder{
	{regexp.MustCompile(`https://git\.example/lab/exps\.git`), func(s *scenario) string { return filepath.Join(s.dir, "exps.git") }},
	{regexp.MustCompile(`/srv/git/exps\.git`), func(s *scenario) string { return filepath.Join(s.dir, "exps.git") }},
	{regexp.MustCompile(`~/src/exps\b`), func(s *scenario) string { return s.clone }},
	{regexp.MustCompile(`/srv/expsync/store\b|\bDIR\b`), func(s *scenario) string { return filepath.Join(s.dir, "store") }},
	// A run folder: the first pi-montecarlo run of main.
	{regexp.MustCompile(`results/[a-z-]+/3f9c\.\.\.`), func(s *scenario) string { return s.run }},
	// A reproduction statement: the newest one of that run folder.
	{regexp.MustCompile(`reproductions/\d{8}T\d{6}Z-[A-Za-z0-9]+\.intoto\.jsonl`), func(s *scenario) string {
		found, _ := filepath.Glob(filepath.Join(s.clone, s.run, "reproductions", "*.intoto.jsonl"))
		sort.Strings(found)
		if len(found) == 0 {
			return "reproductions/NONE-WRITTEN-YET"
		}
		return "reproductions/" + filepath.Base(found[len(found)-1])
	}},
	// The hand check of a context tree (experiment-files.md): from the
	// run folder's run.json.
	{regexp.MustCompile(`<context\.tree>`), func(s *scenario) string { return s.runJSON()["contextTree"].(string) }},
	{regexp.MustCompile(`<each contextExcluded path>`), func(s *scenario) string {
		var paths []string
		for _, p := range s.runJSON()["contextExcluded"].([]any) {
			paths = append(paths, p.(string))
		}
		return strings.Join(paths, " ")
	}},
	{regexp.MustCompile(`REGISTRY/expsync@sha256:\.\.\.`), func(*scenario) string {
		return "registry.example/expsync@sha256:" + strings.Repeat("ab", 32)
	}},
	{regexp.MustCompile(`EXPSYNC_PASSWORD=\.\.\.`), func(*scenario) string { return `EXPSYNC_PASSWORD=""` }},
	// Keys: the lab's (signed the runs) and a reviewer's, outside the clone.
	{regexp.MustCompile(`(^|[ =])(lab|me)\.(key|pub)\b`), nil},
}

// substitute replaces the placeholders of a documented command.
func (s *scenario) substitute(cmd string) string {
	for _, p := range placeholders {
		if p.value == nil {
			cmd = p.pattern.ReplaceAllString(cmd, "${1}"+filepath.Join(s.dir, "keys")+"/${2}.${3}")
			continue
		}
		cmd = p.pattern.ReplaceAllStringFunc(cmd, func(string) string { return p.value(s) })
	}
	return cmd
}

// runJSON is run.json of the scenario's run folder.
func (s *scenario) runJSON() map[string]any {
	data, err := os.ReadFile(filepath.Join(s.clone, s.run, "run.json"))
	if err != nil {
		return map[string]any{"contextTree": "NO-RUN-JSON", "contextExcluded": []any{}}
	}
	var m map[string]any
	_ = json.Unmarshal(data, &m)
	return m
}

// copyScenario returns a fresh copy of the scenario built in dir.
func copyScenario(t *testing.T, built string) *scenario {
	t.Helper()
	dir := t.TempDir()
	if out, err := exec.Command("cp", "-a", built+"/.", dir).CombinedOutput(); err != nil {
		t.Fatalf("copy the scenario: %v\n%s", err, out)
	}
	s := scenarioAt(dir)
	// The copy's clone pulls from the copy's remote, not the original's.
	if out, code, err := s.sh(s.clone, "git remote set-url origin "+filepath.Join(dir, "exps.git")); err != nil || code != 0 {
		t.Fatalf("git remote set-url: %v\n%s", err, out)
	}
	runs, _ := filepath.Glob(filepath.Join(s.clone, "results", "pi-montecarlo", "*", "run.json"))
	if len(runs) == 0 {
		t.Fatal("the scenario has no pi-montecarlo run")
	}
	sort.Strings(runs)
	s.run, _ = filepath.Rel(s.clone, filepath.Dir(runs[0]))
	return s
}

func scenarioAt(dir string) *scenario {
	s := &scenario{dir: dir, clone: filepath.Join(dir, "clone")}
	bin, _ := expsyncBinary()
	path := filepath.Dir(bin) + ":" + os.Getenv("PATH")
	if home, err := os.UserHomeDir(); err == nil {
		// cosign, built by hack/tools/build-cosign.sh (as .ci/run does).
		path = filepath.Join(home, ".cache", "expsync", "tools") + ":" + path
	}
	s.env = append(os.Environ(),
		"PATH="+path,
		"HOME="+filepath.Join(dir, "home"),
		"EXPSYNC_PASSWORD=",
		"GIT_CONFIG_GLOBAL="+filepath.Join(dir, "gitconfig"),
		"GIT_CONFIG_NOSYSTEM=1",
		"GOTOOLCHAIN=local",
	)
	return s
}

// sh runs a shell script in dir with the scenario's environment.
func (s *scenario) sh(dir, script string) (string, int, error) {
	cmd := exec.Command("bash", "-o", "pipefail", "-c", script)
	cmd.Dir = dir
	cmd.Env = s.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		return out.String(), ee.ExitCode(), nil
	}
	return out.String(), 0, err
}

func buildScenario(dir string) error {
	bin, err := expsyncBinary()
	if err != nil {
		return err
	}
	examples, _ := filepath.Abs(filepath.Join(repoRoot, "examples", "experiments"))
	s := scenarioAt(dir)
	for _, d := range []string{"home", "keys"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	gitconfig := "[user]\n\tname = A. Researcher\n\temail = researcher@lab.example\n[init]\n\tdefaultBranch = main\n[commit]\n\tgpgsign = false\n[advice]\n\tdetachedHead = false\n"
	if err := os.WriteFile(filepath.Join(dir, "gitconfig"), []byte(gitconfig), 0o644); err != nil {
		return err
	}
	run := fmt.Sprintf("%q run %q --key keys/lab.key --store store --state state --batch-interval 1s", bin, filepath.Join(dir, "exps.git"))
	script := strings.Join([]string{
		"set -eu",
		fmt.Sprintf("%q keygen --key-prefix keys/lab", bin),
		fmt.Sprintf("%q keygen --key-prefix keys/me", bin),
		"git init -q --bare exps.git",
		"git clone -q exps.git clone 2>/dev/null",
		fmt.Sprintf("cp -R %q/. clone/", examples),
		"git -C clone add -A && git -C clone commit -q -m 'Add the experiments' && git -C clone push -q origin HEAD:main",
		run + " --branch main",
		// A pull request: one more seed of pi; its results branch starts
		// at its head, as serve creates it, and is run the same way.
		"git -C clone pull -q --ff-only origin main",
		"git -C clone checkout -q -b pr",
		`sed -i 's/seed: \[1, 2, 3\]/seed: [1, 2, 3, 4]/' clone/experiments/pi/pi.yaml`,
		"git -C clone diff --quiet && { echo 'the pull request changed nothing: pi.yaml moved'; exit 1; } || true",
		"git -C clone commit -q -am 'pi: a fourth seed'",
		"git -C clone push -q origin HEAD:refs/pull/8/head HEAD:refs/heads/expsync/results/pr-8",
		run + " --branch expsync/results/pr-8",
		"git -C clone checkout -q main && git -C clone branch -q -D pr",
		"git -C clone fetch -q origin refs/pull/8/head:pr-8-head expsync/results/pr-8:pr-8-results",
		"git -C clone tag v1 main && git -C clone tag v2 pr-8-results",
		"mkdir clone/results-before clone/results-after",
		"git -C clone archive v1 results | tar -x -C clone/results-before --strip-components=1",
		"git -C clone archive v2 results | tar -x -C clone/results-after --strip-components=1",
	}, "\n")
	if out, code, err := s.sh(dir, script); err != nil || code != 0 {
		return fmt.Errorf("building the docs' scenario in %s: exit %d %v\n%s", dir, code, err, out)
	}
	return nil
}
