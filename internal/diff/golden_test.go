package diff_test

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/diff"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/testkeys"
	"github.com/expsync/expsync/tree"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// The sweep of the golden tests: lr x seed, metrics computed from both so
// every value is known. The head's code scales the loss, fails seed 2 and
// its sweep drops seed 3 for seed 4.
const sweepSpec = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: sweep
spec:
  image: host
  command: ["sh", "train.sh", "{{params.lr}}", "{{params.seed}}"]
  sweep:
    matrix:
      lr: [0.1, 0.2]
      seed: [SEEDS]
  metrics: out/metrics.json
  timeout: 1m
`

const baseTrain = `mkdir -p out
awk -v lr="$1" -v s="$2" 'BEGIN { printf "{\"loss\": %g, \"accuracy\": %g}\n", lr * s, 1 - lr * s / 10 }' > out/metrics.json
`

const headTrain = `mkdir -p out
if [ "$2" = 2 ]; then echo "diverged at step 7" >&2; exit 3; fi
awk -v lr="$1" -v s="$2" 'BEGIN { printf "{\"loss\": %g, \"accuracy\": %g}\n", 0.9 * lr * s, 1 - lr * s / 20 }' > out/metrics.json
`

// steady does not change: its one run is on both sides.
const steadySpec = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: steady
spec:
  image: host
  command: ["sh", "-c", "mkdir -p out && echo '{\"value\": 42}' > out/metrics.json"]
  metrics: out/metrics.json
  timeout: 1m
`

// forgedRunID names a folder pushed into the head's results by hand.
const forgedRunID = "f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0f0"

// sweepLab runs the base and the head of the golden sweep with expsync
// (real runs, real signatures, results committed to a real Git server)
// and returns a clone holding both results commits, their IDs, and the
// trusted key.
type sweepLab struct {
	clone      string
	base, head string // the results commits
	keys       attest.Verifiers
}

func newSweepLab(t *testing.T) *sweepLab {
	t.Helper()
	ctx := context.Background()
	lab := gitpeer.New(t, nil)
	key, pub := testkeys.Write(t, t.TempDir(), "lab")
	l, err := deploy.Open(ctx, deploy.Options{StoreDir: t.TempDir(), StateDir: t.TempDir(), Key: key, Local: deploy.LocalOptions{Concurrency: 2}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close(ctx) })
	src, err := l.Source(gitsource.Repository{URL: lab.URL(), URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
		Refs: []gitsource.RefPolicy{{Pattern: "main", Trusted: true}}})
	if err != nil {
		t.Fatal(err)
	}
	run := func() string {
		t.Helper()
		changes, err := src.Poll(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range changes {
			if ch.Ref == "refs/heads/main" {
				if _, err := l.Refs.ReconcileRef(ctx, src, ch); err != nil {
					t.Fatalf("reconcile: %v", err)
				}
			}
		}
		lab.Pull()
		return lab.Git(lab.Peer, "rev-parse", "HEAD")
	}
	lab.Commit("base", map[string]string{
		"experiments/sweep/sweep.yaml":   strings.Replace(sweepSpec, "SEEDS", "1, 2, 3", 1),
		"experiments/sweep/train.sh":     baseTrain,
		"experiments/steady/steady.yaml": steadySpec,
	})
	s := &sweepLab{clone: lab.Peer, base: run()}
	lab.Commit("head: new loss, seed 4", map[string]string{
		"experiments/sweep/sweep.yaml": strings.Replace(sweepSpec, "SEEDS", "1, 2, 4", 1),
		"experiments/sweep/train.sh":   headTrain,
		// Pushed by hand: it looks like a result and is not one.
		"results/sweep/" + forgedRunID + "/run.json":     `{"runID": "` + forgedRunID + `", "experiment": "sweep", "status": "Succeeded", "params": {"lr": 0.1, "seed": 9}}`,
		"results/sweep/" + forgedRunID + "/metrics.json": `{"loss": 0.0001}`,
	})
	s.head = run()
	k, err := attest.LoadVerifierKey(ctx, pub)
	if err != nil {
		t.Fatal(err)
	}
	s.keys = attest.Verifiers{k}
	return s
}

func (s *sweepLab) side(t *testing.T, repo *diff.Repository, label, commit string) diff.Side {
	t.Helper()
	tr, err := repo.Tree(commit)
	if err != nil {
		t.Fatal(err)
	}
	return diff.Side{Label: label, Code: tr}
}

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	file := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(file, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(file)
	if err != nil {
		t.Fatalf("%v (run with -update to write it)", err)
	}
	if !bytes.Equal(want, got) {
		t.Errorf("%s differs from the golden file (go test ./diff -run %s -update rewrites it):\n%s", name, t.Name(), lineDiff(string(want), string(got)))
	}
}

// lineDiff shows the first lines that differ.
func lineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	var b strings.Builder
	for i := 0; i < len(w) || i < len(g); i++ {
		var a, c string
		if i < len(w) {
			a = w[i]
		}
		if i < len(g) {
			c = g[i]
		}
		if a != c {
			fmt.Fprintf(&b, "line %d:\n  want: %s\n  got:  %s\n", i+1, a, c)
			if b.Len() > 2000 {
				break
			}
		}
	}
	return b.String()
}

// TestGoldenSweep compares the base and head revisions of a sweep whose
// runs changed (new code), were added (seed 4), removed (seed 3) and
// failed (seed 2, a regression), beside an experiment that did not change
// and a forged folder: text, Markdown and JSON against golden files, the
// Markdown parsed by a CommonMark parser.
func TestGoldenSweep(t *testing.T) {
	s := newSweepLab(t)
	repo, err := diff.OpenRepository(s.clone)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := diff.Compute(s.side(t, repo, "base", s.base), s.side(t, repo, "head", s.head), diff.Options{Keys: s.keys})
	if err != nil {
		t.Fatal(err)
	}
	want := diff.Counts{Changed: 4, Added: 2, Removed: 2, Unchanged: 1, Failed: 2, Regressions: 2, Stale: 6}
	if rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	if len(rep.Unverified) != 1 || rep.Unverified[0].Side != "head" || !strings.HasSuffix(rep.Unverified[0].Dir, forgedRunID) {
		t.Errorf("unverified %+v, want the forged folder on the head", rep.Unverified)
	}
	var text, js bytes.Buffer
	if err := diff.Text(&text, rep); err != nil {
		t.Fatal(err)
	}
	if err := diff.JSON(&js, rep); err != nil {
		t.Fatal(err)
	}
	md := diff.Markdown(rep, diff.MarkdownOptions{Link: func(p string) string { return "https://forge.example/lab/exps/src/branch/main/" + p }})
	golden(t, "sweep.txt", text.Bytes())
	golden(t, "sweep.json", js.Bytes())
	golden(t, "sweep.md", md)
	checkRenderedMarkdown(t, md, renderedExpectations{
		tables: 5, // summary, status changes, sweep changed/added/removed; steady has none (unchanged only)
		texts:  []string{"Succeeded → ", "Failed: exit code 3", "0.1 → 0.09 (-0.01, -10.00%)"}, linkPrefix: "https://forge.example/",
	})

	// Merge base: the head's history contains the base, so the merge base
	// of base and head is the base.
	mb, err := repo.MergeBase(s.base, s.head)
	if err != nil || mb != s.base {
		t.Errorf("merge base %s, %v; want %s", mb, err, s.base)
	}
}

// TestGoldenResultsFolders compares two bare results folders (no plan):
// every verified run counts, the newest of each point; the head's folder
// still holds the base's seed-3 runs (results stay when code moves on), so
// they are not removed there — the revisions' comparison is the one that
// knows.
func TestGoldenResultsFolders(t *testing.T) {
	s := newSweepLab(t)
	dirs := map[string]string{}
	for name, commit := range map[string]string{"base": s.base, "head": s.head} {
		dir := filepath.Join(t.TempDir(), name)
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command("sh", "-c", "git -C \"$1\" archive \"$2\" results | tar -x -C \"$3\"", "_", s.clone, commit, dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("git archive: %v: %s", err, out)
		}
		dirs[name] = filepath.Join(dir, "results")
	}
	side := func(name string) diff.Side {
		r, err := tree.NewDir(dirs[name])
		if err != nil {
			t.Fatal(err)
		}
		return diff.Side{Label: name, Results: r, ResultsRoot: "."}
	}
	rep, err := diff.Compute(side("base"), side("head"), diff.Options{Keys: s.keys})
	if err != nil {
		t.Fatal(err)
	}
	want := diff.Counts{Changed: 4, Added: 2, Unchanged: 3, Failed: 2, Regressions: 2, Stale: 4}
	if rep.Totals != want {
		t.Errorf("totals %+v, want %+v", rep.Totals, want)
	}
	var text bytes.Buffer
	if err := diff.Text(&text, rep); err != nil {
		t.Fatal(err)
	}
	golden(t, "folders.txt", text.Bytes())

	// A junk reproduction statement pushed into a verified run folder: the
	// run still counts (a run is done by its own attestation, as the
	// READMEs and the planner say) and the statement is listed apart as
	// unverified, naming it, so a pull request that forges one fails.
	steady, err := filepath.Glob(filepath.Join(dirs["head"], "steady", "*", "run.json"))
	if err != nil || len(steady) != 1 {
		t.Fatalf("steady's run folder on the head: %v %v", steady, err)
	}
	junk := filepath.Join(filepath.Dir(steady[0]), "reproductions", "20261207T000000Z-0000000000000000.intoto.jsonl")
	if err := os.MkdirAll(filepath.Dir(junk), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(junk, []byte(`{"payloadType": "application/vnd.in-toto+json", "payload": "e30=", "signatures": []}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	rep, err = diff.Compute(side("base"), side("head"), diff.Options{Keys: s.keys})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Totals != want {
		t.Errorf("with a junk reproduction statement in steady's run folder: totals %+v, want %+v (the run still counts)", rep.Totals, want)
	}
	var named bool
	for _, u := range rep.Unverified {
		named = named || (u.Side == "head" && strings.HasSuffix(u.Dir, "/reproductions/"+filepath.Base(junk)))
	}
	if !named {
		t.Errorf("the junk statement is not listed apart as unverified: %+v", rep.Unverified)
	}
}
