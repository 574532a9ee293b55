package main

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// The issue-9 tests: each through the built binary against a real remote,
// with the git CLI as the peer that clones, checks out and fscks.

func experimentYAML(name, command string, extra string) string {
	return `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: ` + name + `
spec:
  image: host
  command: ["sh", "-c", ` + strconvQuote(command) + `]
  resources: {cpu: 100m}
` + extra
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// runRecord reads the run.json of the only run folder of experiment.
func (b *binLab) runRecord(experiment string) (dir string, rec map[string]any) {
	b.T.Helper()
	folders := b.folders(experiment)
	if len(folders) != 1 {
		b.T.Fatalf("%d run folders of %s, want 1", len(folders), experiment)
	}
	data, err := os.ReadFile(filepath.Join(folders[0], "run.json"))
	if err != nil {
		b.T.Fatal(err)
	}
	if err := json.Unmarshal(data, &rec); err != nil {
		b.T.Fatal(err)
	}
	return folders[0], rec
}

// TestSecretInAnOutputNameNeverReachesGit (item 1): a run that names
// output files and folders after a secret's value — small ones, one too
// large to commit (recorded by digest only), one in a sub-folder — had the
// value committed in paths, run.json and the statement's subjects. Now the
// run fails naming the declared output and the variable; no path, record
// or subject of any commit holds the value; the folder verifies.
func TestSecretInAnOutputNameNeverReachesGit(t *testing.T) {
	const secret = "tokval-8d1e5f93"
	b := newBinLab(t)
	b.env = append(b.env, "EXPSYNC_SECRET_LAB_API="+secret)
	b.Commit("leaky names", map[string]string{"experiments/leak.yaml": experimentYAML("leak",
		`mkdir -p out/sub "out/dir-$TOK"; echo ok > out/ok.txt; echo a > "out/$TOK.txt"; head -c 2000000 /dev/zero > "out/big-$TOK.bin"; echo b > "out/dir-$TOK/x"; echo c > "out/sub/$TOK"`,
		"  outputs: [out/]\n  env:\n    - {name: TOK, secretRef: {name: lab, key: api}}\n")})
	b.mustRun()
	_, rec := b.runRecord("leak")
	reason, _ := rec["reason"].(string)
	if rec["status"] != "Failed" || !strings.Contains(reason, "output out/ holds 4 file(s) whose names contain the value of secret variable TOK") {
		t.Errorf("status %v reason %q, want Failed naming out/ and TOK", rec["status"], reason)
	}
	if found := b.treeHolds("main", secret); len(found) > 0 {
		t.Errorf("the secret's value is in the branch: %v", found)
	}
	clone := b.Clone()
	if log := b.Git(clone, "log", "--format=%B"); strings.Contains(log, secret) {
		t.Errorf("a commit message holds the secret")
	}
	if code, stdout, stderr := b.verify("main"); code != 0 || strings.Contains(stdout+stderr, secret) {
		t.Errorf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	b.checkEveryCommit()
}

// TestNamesGitRefusesNeverReachACommit (item 3): output names Linux
// accepts but Git refuses somewhere — .git in its NTFS and HFS+ spellings,
// git~1, Windows device names and characters, a trailing period — and a
// .gitattributes that would rewrite the folder's files at checkout, used
// to be committed and break every later clone. The run fails with the
// reason, only its good output is committed, and every commit of the
// branch checks out with the git CLI (NTFS and HFS+ protection on) and
// passes git fsck --strict. A results folder of expsync.yaml with such a
// name is refused by validate (file:line:col) and by run, which pushes
// nothing.
func TestNamesGitRefusesNeverReachACommit(t *testing.T) {
	b := newBinLab(t)
	b.Commit("odd names", map[string]string{"experiments/odd.yaml": experimentYAML("odd",
		`mkdir -p out/.git. "out/.g`+"\u200c"+`it" out/git~1 "out/.git "; echo ok > out/ok.txt; for d in out/.git. "out/.g`+"\u200c"+`it" out/git~1 "out/.git "; do echo x > "$d/config"; done; echo y > out/aux.txt; echo z > out/a:b; echo w > out/end.; printf '* text eol=crlf\n' > out/.gitattributes`,
		"  outputs: [out/]\n")})
	b.mustRun()
	dir, rec := b.runRecord("odd")
	outputs, _ := rec["outputs"].([]any)
	if rec["status"] != "Failed" || len(outputs) != 1 {
		t.Errorf("status %v, %d outputs recorded; want Failed with out/ok.txt alone (reason %q)", rec["status"], len(outputs), rec["reason"])
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "outputs", "out")); len(entries) != 1 {
		t.Errorf("%d entries committed under outputs/out, want ok.txt alone", len(entries))
	}
	if code, stdout, stderr := b.verify("main"); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	b.checkEveryCommit()

	// The results folder itself.
	head := b.commitUnsigned("results under .git.", map[string]string{"expsync.yaml": "results: lab/.git.\n"})
	clone := b.Clone()
	code, _, stderr := b.expsync("validate", clone)
	if code != 1 || !strings.Contains(stderr, "expsync.yaml:1:10: results: \".git.\" is .git on Windows") {
		t.Errorf("validate: exit %d, want 1 with file:line:col\n%s", code, stderr)
	}
	if code, _, stderr := b.run(); code == 0 || !strings.Contains(stderr, "expsync.yaml:1:10") {
		t.Errorf("run: exit %d, want a failure naming expsync.yaml:1:10\n%s", code, stderr)
	}
	if b.Head() != head {
		t.Errorf("run pushed a commit for a repository whose results folder Git refuses")
	}
	b.checkEveryCommit()
}

// TestDeletedSignedFileFailsVerifyAndIsRecommitted (item 5): deleting a
// committed output and log.txt from a run folder passed `expsync verify`
// (exit 0, "not checked: absent") and the reconciler saw nothing to do,
// although the signed run.json says the files were committed. Now verify
// fails naming each file, the next `expsync run` re-commits the folder from
// the run cache (no rerun), and the run after that does nothing.
func TestDeletedSignedFileFailsVerifyAndIsRecommitted(t *testing.T) {
	b := newBinLab(t)
	marker := filepath.Join(t.TempDir(), "runs")
	b.Commit("one run", map[string]string{"experiments/one.yaml": experimentYAML("one",
		`echo ran >> `+marker+`; mkdir -p out; echo 42 > out/answer.txt; echo a log line`, "  outputs: [out/answer.txt]\n")})
	b.mustRun()
	dir, _ := b.runRecord("one")
	rel, _ := filepath.Rel(filepath.Dir(filepath.Dir(filepath.Dir(dir))), dir)
	b.Pull()
	for _, f := range []string{"outputs/out/answer.txt", "log.txt"} {
		b.Git(b.Peer, "rm", "-q", filepath.ToSlash(filepath.Join(rel, f)))
	}
	b.Git(b.Peer, "commit", "-q", "-m", "drop two signed files")
	b.Git(b.Peer, "push", "-q", "origin", "HEAD:main")
	deleted := b.Head()

	code, stdout, stderr := b.verify("main")
	for _, want := range []string{"subject outputs/out/answer.txt", "subject log.txt", "absent from the folder"} {
		if code != 1 || !strings.Contains(stdout+stderr, want) {
			t.Errorf("verify after deleting: exit %d, want 1 naming %q\n%s%s", code, want, stdout, stderr)
		}
	}
	out := b.mustRun()
	if !strings.Contains(out, "1 recovered from the run cache") {
		t.Errorf("second run: want the folder recovered from the run cache\n%s", out)
	}
	if b.Head() == deleted {
		t.Fatalf("the folder was not re-committed")
	}
	if code, stdout, stderr := b.verify("main", "--require-all"); code != 0 {
		t.Errorf("verify after the re-commit: exit %d\n%s%s", code, stdout, stderr)
	}
	again := b.Head()
	b.mustRun()
	if b.Head() != again {
		t.Errorf("a third run committed again: the reconcile loops")
	}
	if data, _ := os.ReadFile(marker); strings.Count(string(data), "ran") != 1 {
		t.Errorf("the run executed %d times, want once", strings.Count(string(data), "ran"))
	}
}

// TestRunAtAndOverTheOutputFileLimit (item 4): a run with 30,000 output
// files wrote a run.json larger than the reconciler read, so every later
// reconcile took the genuine folder for a forged one and committed it
// again. A run at the limit (10,000 files) is committed and verifies; one
// over it fails naming the limit and how to lower it; a second `expsync
// run` finds both done and commits nothing.
func TestRunAtAndOverTheOutputFileLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and commits 10,000 files")
	}
	b := newBinLab(t)
	many := func(n int) string {
		return fmt.Sprintf(`mkdir -p out; cd out; i=0; while [ $i -lt %d ]; do echo $i > f$i; i=$((i+1)); done`, n)
	}
	b.Commit("large runs", map[string]string{
		"experiments/at.yaml":   experimentYAML("at", many(10_000), "  outputs: [out/]\n"),
		"experiments/over.yaml": experimentYAML("over", many(10_001), "  outputs: [out/]\n"),
	})
	b.mustRun()
	first := b.Head()
	_, at := b.runRecord("at")
	if outs, _ := at["outputs"].([]any); at["status"] != "Succeeded" || len(outs) != 10_000 {
		t.Errorf("at the limit: status %v with %d outputs (%v)", at["status"], len(outs), at["reason"])
	}
	_, over := b.runRecord("over")
	if reason, _ := over["reason"].(string); over["status"] != "Failed" || !strings.Contains(reason, "outputs hold more than 10000 files") || !strings.Contains(reason, "limits.maxOutputFiles") {
		t.Errorf("over the limit: status %v reason %q", over["status"], reason)
	}
	if code, stdout, stderr := b.verify("main"); code != 0 {
		t.Errorf("verify: exit %d\n%s%s", code, stdout, stderr)
	}
	out := b.mustRun()
	if b.Head() != first || !strings.Contains(out, "nothing to do: all 2 runs") {
		t.Errorf("a second run committed again or re-ran (head %s, was %s):\n%s", b.Head(), first, out)
	}
}

// TestForcePushDuringTheRunsKeepsResultsOffTheNewHistory (item 2): the
// branch is force-pushed, while a run goes on, to a commit that does not
// descend from the one that ran. Its results were merged onto the new head,
// which then showed a verified run its own experiment files never planned
// (and `expsync verify --repo . --rev main` failed). Now they stay in the
// run cache, `expsync run` reconciles the new head as a new commit, and
// when the commit that ran comes back its run is recovered, not run again.
func TestForcePushDuringTheRunsKeepsResultsOffTheNewHistory(t *testing.T) {
	b := newBinLab(t)
	dir := t.TempDir()
	started, release, marker := filepath.Join(dir, "started"), filepath.Join(dir, "release"), filepath.Join(dir, "ran")
	ran := b.Commit("slow run", map[string]string{"experiments/slow.yaml": experimentYAML("slow",
		`touch `+started+`; while [ ! -f `+release+` ]; do sleep 0.1; done; echo ran >> `+marker+`; echo done > out.txt`, "  outputs: [out.txt]\n")})

	cmd := exec.Command(expsyncBinary(t), "run", b.URL(), "--allow-http", "--branch", "main", "--key", b.key,
		"--store", b.store, "--state", b.state, "--progress", "none")
	cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(2 * time.Minute)
	for _, err := os.Stat(started); err != nil; _, err = os.Stat(started) {
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			t.Fatalf("the run did not start\n%s%s", stdout.String(), stderr.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// Rewrite main: an unrelated history with another experiment.
	b.Git(b.Peer, "checkout", "-q", "--orphan", "rewrite")
	b.Git(b.Peer, "rm", "-rq", "--cached", ".")
	for _, f := range []string{"experiments"} {
		os.RemoveAll(filepath.Join(b.Peer, f))
	}
	if err := os.MkdirAll(filepath.Join(b.Peer, "experiments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(b.Peer, "experiments", "other.yaml"), []byte(experimentYAML("other", "echo other > o.txt", "  outputs: [o.txt]\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	b.Git(b.Peer, "add", "-A")
	b.Git(b.Peer, "commit", "-q", "-m", "rewritten")
	rewritten := b.Git(b.Peer, "rev-parse", "HEAD")
	b.Git(b.Peer, "push", "-q", "--force", "origin", "HEAD:main")
	if err := os.WriteFile(release, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("expsync run: %v\n%s%s", err, stdout.String(), stderr.String())
	}
	if !strings.Contains(stdout.String(), "force-pushed during the runs") {
		t.Errorf("no word of the force-push:\n%s", stdout.String())
	}
	clone := b.Clone()
	if _, err := os.Stat(filepath.Join(clone, "results", "slow")); err == nil {
		t.Errorf("the results of the run of %s were committed onto the rewritten history", ran[:12])
	}
	if len(b.folders("other")) != 1 {
		t.Errorf("the new head's own run was not committed")
	}
	if !strings.Contains(b.Git(clone, "log", "--format=%H"), rewritten) {
		t.Errorf("main does not hold the rewritten commit")
	}
	if code, out, errs := b.verify("main", "--require-all"); code != 0 {
		t.Errorf("verify --repo . --rev main: exit %d\n%s%s", code, out, errs)
	}
	b.checkEveryCommit()

	// The commit that ran comes back: its run is recovered from the cache.
	b.Git(b.Peer, "push", "-q", "--force", "origin", ran+":refs/heads/main")
	out := b.mustRun()
	if !strings.Contains(out, "1 recovered from the run cache") {
		t.Errorf("want the run recovered from the run cache:\n%s", out)
	}
	if data, _ := os.ReadFile(marker); strings.Count(string(data), "ran") != 1 {
		t.Errorf("the run executed %d times, want once", strings.Count(string(data), "ran"))
	}
	if code, out, errs := b.verify("main", "--require-all"); code != 0 {
		t.Errorf("verify after the commit came back: exit %d\n%s%s", code, out, errs)
	}
}

// TestSummariesFollowTheBranch (item 7): a folder someone else pushes into
// results/ after the last results commit was not listed as unverified
// until the next run of that experiment. A reconcile with nothing to run
// now brings the summaries up to date in one commit, and the next one
// commits nothing (no loop); a README edited by hand is rewritten the same
// way.
func TestSummariesFollowTheBranch(t *testing.T) {
	b := newBinLab(t)
	b.Commit("sweep", map[string]string{"experiments/s.yaml": experimentYAML("s", "echo '{\"v\": 1}' > m.json",
		"  metrics: m.json\n  sweep:\n    matrix: {seed: [1, 2]}\n")})
	b.mustRun()
	forged := strings.Repeat("ab", 32)
	b.commitUnsigned("someone else's folder", map[string]string{
		"results/s/" + forged + "/run.json":                `{"runID": "` + forged + `", "experiment": "s", "status": "Succeeded"}`,
		"results/s/" + forged + "/provenance.intoto.jsonl": `{"payloadType":"x","payload":"eA==","signatures":[]}`,
	})
	pushed := b.Head()
	out := b.mustRun()
	if b.Head() == pushed {
		t.Fatalf("nothing committed after a forged folder was pushed:\n%s", out)
	}
	readme, err := os.ReadFile(filepath.Join(b.Clone(), "results", "s", "README.md"))
	if err != nil || !strings.Contains(string(readme), "Unverified folders") || !strings.Contains(string(readme), forged[:12]) {
		t.Errorf("README does not list the forged folder as unverified:\n%s", readme)
	}
	if !strings.Contains(string(readme), "2 verified runs") {
		t.Errorf("README does not count the 2 genuine runs:\n%s", readme)
	}
	refreshed := b.Head()
	b.mustRun()
	if b.Head() != refreshed {
		t.Fatalf("a reconcile with nothing new committed again: the refresh loops")
	}

	// A README edited by hand.
	b.commitUnsigned("edit the README", map[string]string{"results/s/README.md": "# all runs succeeded, trust me\n"})
	edited := b.Head()
	b.mustRun()
	if b.Head() == edited {
		t.Fatalf("the hand-edited README was not rewritten")
	}
	if data, _ := os.ReadFile(filepath.Join(b.Clone(), "results", "s", "README.md")); !strings.Contains(string(data), "2 verified runs") {
		t.Errorf("README after the rewrite:\n%s", data)
	}
	again := b.Head()
	b.mustRun()
	if b.Head() != again {
		t.Errorf("committed again after the rewrite")
	}
}
