package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
)

// gitRepo is a repository made with the git CLI, as a user makes one.
type gitRepo struct {
	t   testing.TB
	dir string
}

func newGitRepo(t testing.TB) *gitRepo {
	t.Helper()
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("git CLI not installed")
	}
	r := &gitRepo{t: t, dir: t.TempDir()}
	r.git("init", "-q", "-b", "main")
	return r
}

func (r *gitRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@e.invalid",
		"GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@e.invalid", "GIT_CONFIG_NOSYSTEM=1", "HOME="+r.dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		r.t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func (r *gitRepo) write(name, content string) {
	r.t.Helper()
	p := filepath.Join(r.dir, filepath.FromSlash(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		r.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		r.t.Fatal(err)
	}
}

func (r *gitRepo) commit(msg string) string {
	r.git("add", "-A")
	r.git("commit", "-q", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

// experimentRepo commits an experiment with its code; content varies the code.
func experimentRepo(t testing.TB, message, code string) *gitRepo {
	r := newGitRepo(t)
	r.write("code/pi/estimate.py", code)
	r.write("experiments/pi.yaml", "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: pi}\n")
	r.commit(message)
	return r
}

// gitRun is a run attested from the repository's HEAD.
type gitRun struct {
	identity contract.Identity
	run      attest.Run
}

func runFromRepo(t testing.TB, r *gitRepo, seed int) gitRun {
	t.Helper()
	id := contract.Identity{
		IDVersion: contract.IDVersion, Experiment: "pi", Image: contract.HostImage,
		Command: []string{"python3", "estimate.py"}, Params: map[string]any{"seed": seed},
		ContextTree: r.git("rev-parse", "HEAD:code/pi"), Outputs: []string{"out/estimate.json"},
	}
	runID, err := id.ID()
	if err != nil {
		t.Fatal(err)
	}
	return gitRun{identity: id, run: attest.Run{
		RunID: runID, Experiment: "pi", Repository: "https://git.example/lab/exps.git", Ref: "refs/heads/main",
		Commit: r.git("rev-parse", "HEAD"), ContextPath: "code/pi", ContextTree: id.ContextTree,
		SpecPath: "experiments/pi.yaml", SpecBlob: r.git("rev-parse", "HEAD:experiments/pi.yaml"),
		Image: contract.HostImage, Params: id.Params, BuilderID: attest.DefaultBuilderID,
		StartedOn: time.Unix(1700000000, 0), FinishedOn: time.Unix(1700000003, 0), Status: "Succeeded",
	}}
}

// writeSignedRun writes results/<exp>/<runID>/ under root and signs it.
func writeSignedRun(t testing.TB, root string, gr gitRun, signers ...*attest.Signer) string {
	t.Helper()
	dir := filepath.Join(root, "results", gr.run.Experiment, gr.run.RunID)
	rec, _ := json.Marshal(map[string]any{"runID": gr.run.RunID, "experiment": gr.run.Experiment, "identity": gr.identity})
	files := map[string]string{
		attest.RunFile: string(rec) + "\n", attest.MetricsFile: "{\"pi\":3.14}\n", attest.LogFile: "ok\n",
		"outputs/out/estimate.json": "{\"estimate\":3.14}\n",
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	subjects, err := attest.HashFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	gr.run.Subjects = subjects
	env, err := attest.SignRun(gr.run, signers...)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, attest.EnvelopeFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// keyFiles makes a key pair with keygen and returns the loaded signer and
// the public key file.
func keyFiles(t testing.TB, dir, prefix string) (*attest.Signer, string) {
	t.Helper()
	o := &keygenOptions{KeyPrefix: filepath.Join(dir, prefix), Type: "ecdsa",
		Passphrase: func() ([]byte, error) { return []byte("pw"), nil }}
	if err := o.Exec(&bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	t.Setenv(attest.PasswordEnv, "pw")
	s, err := attest.LoadSigner(context.Background(), o.KeyPrefix+".key")
	if err != nil {
		t.Fatal(err)
	}
	return s, o.KeyPrefix + ".pub"
}

// runVerify runs the verb and returns its output and exit code.
func runVerify(t *testing.T, o verifyOptions) (string, int) {
	t.Helper()
	if o.Output == "" {
		o.Output = "text"
	}
	if o.Threshold == 0 {
		o.Threshold = 1
	}
	var out bytes.Buffer
	err := o.Exec(context.Background(), &out)
	if err == nil {
		return out.String(), 0
	}
	var ee *exitError
	if !errors.As(err, &ee) {
		t.Fatalf("verify returned %v without an exit code", err)
	}
	return out.String() + ee.Error(), ee.code
}

func expectExit(t *testing.T, o verifyOptions, code int, mentions ...string) string {
	t.Helper()
	out, got := runVerify(t, o)
	if got != code {
		t.Fatalf("exit %d, want %d; output:\n%s", got, code, out)
	}
	for _, m := range mentions {
		if !strings.Contains(out, m) {
			t.Errorf("output does not mention %q:\n%s", m, out)
		}
	}
	return out
}

func TestVerifyCLIWithRepository(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	results := t.TempDir()
	dir := writeSignedRun(t, results, runFromRepo(t, repo, 1), signer)

	out := expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: repo.dir, RequireAll: true, RequireCommit: true}, 0,
		"verified", "1 verified, 0 failed")
	if strings.Contains(out, "not checked") {
		t.Errorf("everything present, yet something was not checked:\n%s", out)
	}
}

func TestVerifyCLIRejectsTreeNotReachableFromRev(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	repo.git("checkout", "-q", "-b", "experiment-branch")
	repo.write("code/pi/estimate.py", "print(3.14159)\n")
	repo.commit("more digits")
	gr := runFromRepo(t, repo, 1) // attests the branch's tree
	repo.git("checkout", "-q", "main")
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	dir := writeSignedRun(t, t.TempDir(), gr, signer)

	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: repo.dir}, 1,
		"tree context:code/pi", "is not reachable from")
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: repo.dir, Rev: "experiment-branch"}, 0)
}

func TestVerifyCLIRejectsBlobNotReachableFromRev(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	main := repo.git("rev-parse", "HEAD")
	repo.write("experiments/pi.yaml", "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata: {name: pi2}\n")
	repo.commit("rename experiment") // the context tree is unchanged, the spec blob is new
	gr := runFromRepo(t, repo, 1)
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	dir := writeSignedRun(t, t.TempDir(), gr, signer)

	out := expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: repo.dir, Rev: main}, 1,
		"blob experiments/pi.yaml", "is not reachable from")
	if strings.Contains(out, "failed tree") {
		t.Errorf("the unchanged context tree was reported unreachable:\n%s", out)
	}
}

// TestVerifyCLICommitOnlyWithRequireCommit models a squash merge: the run
// was attested at a commit the repository does not have, but its trees and
// blobs are there.
func TestVerifyCLICommitOnlyWithRequireCommit(t *testing.T) {
	pr := experimentRepo(t, "work on a branch", "print(3.14)\n")
	mainRepo := experimentRepo(t, "squashed: work on a branch", "print(3.14)\n")
	gr := runFromRepo(t, pr, 1)
	if gr.run.Commit == mainRepo.git("rev-parse", "HEAD") {
		t.Fatal("test setup: the two commits should differ")
	}
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	dir := writeSignedRun(t, t.TempDir(), gr, signer)

	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: mainRepo.dir}, 0, "not-checked commit")
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, Repo: mainRepo.dir, RequireCommit: true}, 1,
		"is not in the repository (--require-commit)")
}

func TestVerifyCLIParentFolderNamesEachFailure(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	results := t.TempDir()
	good := writeSignedRun(t, results, runFromRepo(t, repo, 1), signer)
	bad := writeSignedRun(t, results, runFromRepo(t, repo, 2), signer)
	if err := os.WriteFile(filepath.Join(bad, attest.MetricsFile), []byte("{\"pi\":4}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := expectExit(t, verifyOptions{Paths: []string{results}, Keys: []string{pub}}, 1,
		"1 verified, 1 failed", "failed subject metrics.json", filepath.Base(bad)[:12])
	if !strings.Contains(out, good) {
		t.Errorf("the good folder is not listed:\n%s", out)
	}

	jsonOut, code := runVerify(t, verifyOptions{Paths: []string{results}, Keys: []string{pub}, Output: "json"})
	if code != 1 {
		t.Fatalf("json exit %d", code)
	}
	var doc struct {
		Results []struct {
			OK     bool   `json:"ok"`
			Path   string `json:"path"`
			RunID  string `json:"runID"`
			Checks []attest.Check
		} `json:"results"`
	}
	raw := jsonOut[:strings.LastIndex(jsonOut, "}")+1]
	if err := json.Unmarshal([]byte(raw), &doc); err != nil {
		t.Fatalf("json output: %v\n%s", err, jsonOut)
	}
	oks := map[string]bool{}
	for _, r := range doc.Results {
		oks[r.Path] = r.OK
	}
	if len(oks) != 2 || !oks[good] || oks[bad] {
		t.Errorf("json results: %+v", oks)
	}
}

func TestVerifyCLIThresholdAndBuilderID(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	keys := t.TempDir()
	a, pubA := keyFiles(t, keys, "a")
	b, pubB := keyFiles(t, keys, "b")
	_, pubC := keyFiles(t, keys, "c")
	dir := writeSignedRun(t, t.TempDir(), runFromRepo(t, repo, 1), a, b)

	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA, pubB, pubC}, Threshold: 2}, 0)
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA, pubB, pubC}, Threshold: 3}, 1, "2 of 3 required")
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA, pubA}, Threshold: 2}, 2, "distinct keys")
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA}, BuilderIDs: []string{"https://expsync.dev/builder/kubernetes/pod"}}, 1,
		"failed builder")
	// Key b may only vouch for the pod builder: with threshold 2 the local
	// run lacks a second key allowed for its builder.
	podOnly := []string{pubB + "=https://expsync.dev/builder/kubernetes/pod"}
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA, pubB}, KeyBuilders: podOnly, Threshold: 2}, 1,
		"allowed for 1 of the 2 keys")
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA, pubB}, KeyBuilders: podOnly, Threshold: 1}, 0)
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pubA}, KeyBuilders: []string{pubC + "=x"}}, 2, "not given with --key")
}

func TestVerifyCLIUsageErrors(t *testing.T) {
	_, pub := keyFiles(t, t.TempDir(), "lab")
	tests := map[string]verifyOptions{
		"no path":                   {Keys: []string{pub}},
		"no key":                    {Paths: []string{"."}},
		"bad output":                {Paths: []string{"."}, Keys: []string{pub}, Output: "yaml"},
		"rev without repo":          {Paths: []string{"."}, Keys: []string{pub}, Rev: "HEAD"},
		"require-commit needs repo": {Paths: []string{"."}, Keys: []string{pub}, RequireCommit: true},
		"key file missing":          {Paths: []string{"."}, Keys: []string{filepath.Join(t.TempDir(), "nope.pub")}},
		"repo not a repo":           {Paths: []string{"."}, Keys: []string{pub}, Repo: t.TempDir()},
		"threshold zero":            {Paths: []string{"."}, Keys: []string{pub}, Threshold: -1},
	}
	for name, o := range tests {
		t.Run(name, func(t *testing.T) {
			if _, code := runVerify(t, o); code != 2 {
				t.Errorf("exit %d, want 2", code)
			}
		})
	}
}

// cobraExit runs the CLI as main does, but with output captured, and
// returns the exit code main would use and everything printed.
func cobraExit(args ...string) (int, string) {
	var out bytes.Buffer
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&out)
	err := root.Execute()
	var ee *exitError
	switch {
	case err == nil:
		return 0, out.String()
	case errors.As(err, &ee):
		return ee.code, out.String() + ee.Error()
	default:
		return 2, out.String() + err.Error()
	}
}

// TestVerifyCLIThroughCobra parses real flags and maps exit codes as main does.
func TestVerifyCLIThroughCobra(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	dir := writeSignedRun(t, t.TempDir(), runFromRepo(t, repo, 1), signer)
	if code, out := cobraExit("verify", dir, "--key", pub, "--repo", repo.dir, "--require-all", "-o", "json"); code != 0 || !strings.Contains(out, `"ok": true`) {
		t.Errorf("exit %d, want 0:\n%s", code, out)
	}
	if code, out := cobraExit("verify", dir, "--key", pub, "--no-such-flag"); code != 2 {
		t.Errorf("unknown flag: exit %d, want 2:\n%s", code, out)
	}
	other, _ := attest.GenerateKey(attest.KeyECDSA)
	kp, _ := attest.EncodeKeyPair(other, nil)
	otherPub := filepath.Join(t.TempDir(), "other.pub")
	if err := os.WriteFile(otherPub, kp.Public, 0o644); err != nil {
		t.Fatal(err)
	}
	if code, out := cobraExit("verify", dir, "--key", otherPub); code != 1 || !strings.Contains(out, "failed signature") {
		t.Errorf("different key: exit %d, want 1:\n%s", code, out)
	}
}

// TestVerifyCLIStoreAndRequireAll: an output kept only in the store is
// checked there with --store; without it the subject is not checked, which
// fails only with --require-all.
func TestVerifyCLIStoreAndRequireAll(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	dir := writeSignedRun(t, t.TempDir(), runFromRepo(t, repo, 1), signer)
	out := filepath.Join(dir, "outputs", "out", "estimate.json")
	data, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.RemoveAll(filepath.Join(dir, "outputs")); err != nil {
		t.Fatal(err)
	}
	store := t.TempDir()
	sum := sha256.Sum256(data)
	hexSum := hex.EncodeToString(sum[:])
	blob := filepath.Join(store, "sha256", hexSum[:2], hexSum)
	if err := os.MkdirAll(filepath.Dir(blob), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(blob, data, 0o444); err != nil {
		t.Fatal(err)
	}
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}}, 0, "not-checked subject outputs/out/estimate.json")
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, RequireAll: true}, 1, "absent from the folder and the store")
	out2 := expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{pub}, RequireAll: true, Store: store}, 0)
	if strings.Contains(out2, "not-checked") {
		t.Errorf("store copy not used:\n%s", out2)
	}
}

// TestVerifyCLIParentFolderFailsUnsignedAndForeignRunFolders: over a
// parent folder, a run folder with no envelope and a genuine run folder
// copied under another experiment both fail, each named; a PATH that does
// not exist is a usage error.
func TestVerifyCLIParentFolderFailsUnsignedAndForeignRunFolders(t *testing.T) {
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	signer, pub := keyFiles(t, t.TempDir(), "lab")
	root := t.TempDir()
	good := writeSignedRun(t, root, runFromRepo(t, repo, 1), signer)
	expectExit(t, verifyOptions{Paths: []string{filepath.Join(root, "results")}, Keys: []string{pub}}, 0, "1 verified, 0 failed")

	unsigned := filepath.Join(root, "results", "pi", strings.Repeat("ab", 32))
	if err := os.MkdirAll(unsigned, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(unsigned, attest.MetricsFile), []byte(`{"pi":999}`), 0o644); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(root, "results", "descent", filepath.Base(good))
	if err := os.CopyFS(foreign, os.DirFS(good)); err != nil {
		t.Fatal(err)
	}
	linked := filepath.Join(root, "results", "pi", strings.Repeat("cd", 32))
	if err := os.Symlink(good, linked); err != nil {
		t.Fatal(err)
	}
	out := expectExit(t, verifyOptions{Paths: []string{filepath.Join(root, "results")}, Keys: []string{pub}}, 1,
		"1 verified, 3 failed", "unsigned, not a result", `folder lies under experiment "descent" but attests experiment "pi"`,
		"a symlink where a run folder belongs")
	for _, dir := range []string{unsigned, foreign, linked} {
		if !strings.Contains(out, dir) {
			t.Errorf("failed folder %s not named:\n%s", dir, out)
		}
	}
	// Given directly, the copied folder fails the same way.
	expectExit(t, verifyOptions{Paths: []string{foreign}, Keys: []string{pub}}, 1, `attests experiment "pi"`)
	expectExit(t, verifyOptions{Paths: []string{filepath.Join(root, "nonexistent")}, Keys: []string{pub}}, 2, "does not exist")
}
