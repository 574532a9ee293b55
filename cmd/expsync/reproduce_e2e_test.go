package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/testkeys"
)

// runBinary runs the built expsync binary and returns its exit code,
// stdout and stderr.
func runBinary(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	cmd := exec.Command(expsyncBinary(t), args...)
	cmd.Env = append(os.Environ(), "EXPSYNC_PASSWORD=")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		return ee.ExitCode(), stdout.String(), stderr.String()
	case err != nil:
		t.Fatalf("expsync %s: %v", strings.Join(args, " "), err)
	}
	return 0, stdout.String(), stderr.String()
}

// reproLab is a repository of experiments built to test reproduction, run
// once by the built binary against a real Git server.
type reproLab struct {
	*lab
	key, pub     string
	store, state string
	markers      string
	clone        string
	// data is what the input server serves; mode 0 serves it, 1 answers
	// 404, 2 serves other bytes.
	data string
	mode atomic.Int32
}

const reproSpec = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: NAME
spec:
  image: host
`

// markerCmd appends one line to the experiment's marker file: the proof
// that a process of it was started.
func (r *reproLab) markerCmd(name string) string {
	return "echo started >> " + filepath.Join(r.markers, name) + "; mkdir -p out; "
}

func (r *reproLab) starts(name string) int {
	data, _ := os.ReadFile(filepath.Join(r.markers, name))
	return strings.Count(string(data), "started")
}

func newReproLab(t *testing.T) *reproLab {
	t.Helper()
	r := &reproLab{lab: newLab(t), markers: t.TempDir(), data: "x,y\n1,2\n"}
	r.key, r.pub = testkeys.Write(t, t.TempDir(), "lab")
	dir := t.TempDir()
	r.store, r.state = filepath.Join(dir, "store"), filepath.Join(dir, "state")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		switch r.mode.Load() {
		case 1:
			http.NotFound(w, nil)
		case 2:
			fmt.Fprint(w, "x,y\n1,3\n")
		default:
			fmt.Fprint(w, r.data)
		}
	}))
	t.Cleanup(srv.Close)
	sum := sha256.Sum256([]byte(r.data))
	spec := func(name, body string) string { return strings.Replace(reproSpec, "NAME", name, 1) + body }
	files := map[string]string{
		"experiments/det.yaml": spec("det", `  command: [sh, -c, "`+r.markerCmd("det")+`echo seed {{params.seed}} > out/result.txt; echo '{\"score\": 7.5}' > out/metrics.json"]
  params: {seed: 7}
  outputs: [out/result.txt]
  metrics: out/metrics.json
`),
		"experiments/clock.yaml": spec("clock", `  command: [sh, -c, "`+r.markerCmd("clock")+`echo stable > out/stable.txt; echo started at $(date +%s.%N) > out/time.txt"]
  outputs: [out/stable.txt, out/time.txt]
`),
		// close moves in its fifth decimal, far by up to a second's worth
		// of nanoseconds; noise.txt differs at every run.
		"experiments/tol.yaml": spec("tol-ok", `  command: [sh, -c, "`+r.markerCmd("tol-ok")+`n=$(date +%N); echo stable > out/stable.txt; echo $n > out/noise.txt; echo {\\\"close\\\": 1.0000$n} > out/metrics.json"]
  outputs: [out/stable.txt, out/noise.txt]
  metrics: out/metrics.json
  reproduce:
    exact: [out/stable.txt]
    metrics: [{name: close, rel: 0.001}]
`) + "---\n" + spec("tol-far", `  command: [sh, -c, "`+r.markerCmd("tol-far")+`n=$(date +%N); echo {\\\"close\\\": 1.0000$n, \\\"far\\\": 1$n} > out/metrics.json"]
  metrics: out/metrics.json
  reproduce:
    metrics: [{name: close, rel: 0.001}, {name: far, abs: 0.5}]
`),
		"experiments/fetch.yaml": spec("fetch", `  command: [sh, -c, "`+r.markerCmd("fetch")+`cp inputs/table out/table.csv"]
  inputs: [{name: table, uri: "`+srv.URL+`/table.csv", sha256: `+hex.EncodeToString(sum[:])+`}]
  outputs: [out/table.csv]
`),
		"experiments/gpu.yaml": spec("gpu", `  command: [sh, -c, "`+r.markerCmd("gpu")+`echo trained > out/model.txt"]
  outputs: [out/model.txt]
  resources: {gpu: 1}
`),
	}
	r.Commit("experiments", files)
	code, stdout, stderr := runBinary(t, "run", r.URL(), "--allow-http", "--key", r.key, "--store", r.store, "--state", r.state,
		"--progress", "none", "--gpus", "1")
	if code != 0 {
		t.Fatalf("expsync run exited %d:\n%s\n%s", code, stdout, stderr)
	}
	r.clone = r.Clone()
	return r
}

// folder is the one run folder of an experiment in the clone.
func (r *reproLab) folder(t *testing.T, experiment string) string {
	t.Helper()
	dirs, _ := filepath.Glob(filepath.Join(r.clone, "results", experiment, "*", "run.json"))
	if len(dirs) != 1 {
		t.Fatalf("%d run folders of %s", len(dirs), experiment)
	}
	return filepath.Dir(dirs[0])
}

// reproduce runs `expsync reproduce -o json` on folder and returns the exit
// code and the one result.
func (r *reproLab) reproduce(t *testing.T, folder string, args ...string) (int, reproduceJSON, string) {
	t.Helper()
	all := append([]string{"reproduce", "--key", r.pub, "--store", r.store, "--state", r.state, "-o", "json", "--progress", "plain"}, args...)
	code, stdout, stderr := runBinary(t, append(all, folder)...)
	var out struct{ Results []reproduceJSON }
	if err := json.Unmarshal([]byte(stdout), &out); err != nil || len(out.Results) != 1 {
		t.Fatalf("expsync reproduce exited %d with no JSON result (%v):\n%s\n%s", code, err, stdout, stderr)
	}
	return code, out.Results[0], stderr
}

func outputVerdicts(r *attest.Reproduction) map[string]string {
	out := map[string]string{}
	for _, o := range r.Outputs {
		out[o.Path] = o.Verdict
	}
	return out
}

func metricVerdicts(r *attest.Reproduction) map[string]string {
	out := map[string]string{}
	for _, m := range r.Metrics {
		out[m.Name] = m.Verdict
	}
	return out
}

// TestReproduceEndToEnd: runs committed by `expsync run` to a real Git
// server are reproduced by the built binary from a clone — identical, or
// differing with the output named, or judged by their declared tolerances;
// a tampered folder, an input gone from its URL and not in the store, a URL
// serving other bytes and a GPU run on a machine without one are refused
// before any process starts; the signed statement verifies with expsync
// verify and cosign.
func TestReproduceEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end: builds the binary and runs a repository of experiments")
	}
	r := newReproLab(t)

	t.Run("deterministic run is identical", func(t *testing.T) {
		before := r.starts("det")
		code, res, stderr := r.reproduce(t, r.folder(t, "det"))
		if code != 0 || res.Verdict != attest.VerdictIdentical || r.starts("det") != before+1 {
			t.Fatalf("exit %d, verdict %q, %d starts (want 0, identical, one more than %d)\n%s", code, res.Verdict, r.starts("det"), before, stderr)
		}
		if v := outputVerdicts(res.Reproduction); v["out/result.txt"] != attest.ItemIdentical {
			t.Errorf("outputs %v", v)
		}
		if v := metricVerdicts(res.Reproduction); v["score"] != attest.ItemIdentical {
			t.Errorf("metrics %v", v)
		}
		for _, step := range []string{"attestation verified", "contract rebuilt (run ID recomputed)", "started (pid", "Succeeded, exit code 0"} {
			if !strings.Contains(stderr, step) {
				t.Errorf("progress lacks %q:\n%s", step, stderr)
			}
		}
	})

	t.Run("a run printing the time differs and names the output", func(t *testing.T) {
		code, res, _ := r.reproduce(t, r.folder(t, "clock"))
		v := outputVerdicts(res.Reproduction)
		if code != 1 || res.Verdict != attest.VerdictDiffers || v["out/time.txt"] != attest.ItemDiffers || v["out/stable.txt"] != attest.ItemIdentical {
			t.Fatalf("exit %d, verdict %q, outputs %v; want 1, differs, time.txt differs", code, res.Verdict, v)
		}
		for _, o := range res.Reproduction.Outputs {
			if o.Path == "out/time.txt" && (o.FirstDifference == nil || *o.FirstDifference < int64(len("started at "))) {
				t.Errorf("first difference %v, want past the fixed prefix", o.FirstDifference)
			}
		}
		if !strings.Contains(res.Lines["out/time.txt"], `line 1: "started at `) {
			t.Errorf("differing line %q", res.Lines["out/time.txt"])
		}
		code, text, _ := runBinary(t, "reproduce", "--key", r.pub, "--store", r.store, "--progress", "none", r.folder(t, "clock"))
		if code != 1 || !strings.Contains(text, "verdict: DIFFERS") || !regexpLine(text, `out/time.txt\s+differs`) {
			t.Errorf("text report, exit %d:\n%s", code, text)
		}
	})

	t.Run("tolerances honoured", func(t *testing.T) {
		code, res, _ := r.reproduce(t, r.folder(t, "tol-ok"))
		v, m := outputVerdicts(res.Reproduction), metricVerdicts(res.Reproduction)
		if code != 0 || res.Verdict != attest.VerdictReproduced || v["out/noise.txt"] != attest.ItemMayDiffer ||
			v["out/stable.txt"] != attest.ItemIdentical || m["close"] != attest.ItemWithinTolerance {
			t.Fatalf("exit %d, verdict %q, outputs %v, metrics %v", code, res.Verdict, v, m)
		}
		tol := res.Reproduction.Tolerances
		if tol.SpecPath != "experiments/tol.yaml" || len(tol.SpecBlob) != 40 || len(tol.Metrics) != 1 || tol.Metrics[0].Rel != 0.001 {
			t.Errorf("tolerance source %+v", tol)
		}
	})

	t.Run("out-of-tolerance metric reported", func(t *testing.T) {
		code, res, _ := r.reproduce(t, r.folder(t, "tol-far"))
		m := metricVerdicts(res.Reproduction)
		if code != 1 || res.Verdict != attest.VerdictDiffers || m["far"] != attest.ItemDiffers || m["close"] != attest.ItemWithinTolerance {
			t.Fatalf("exit %d, verdict %q, metrics %v", code, res.Verdict, m)
		}
		for _, mc := range res.Reproduction.Metrics {
			if mc.Name == "far" && (mc.Attested == nil || mc.Reproduced == nil || mc.Tolerance == nil || mc.Tolerance.Abs != 0.5) {
				t.Errorf("far: %+v", mc)
			}
		}
	})

	t.Run("tolerances loosened after the fact are not used", func(t *testing.T) {
		// Someone sees far differ and commits a generous tolerance for it:
		// the run was attested with the old file, and that is what judges.
		r.Pull()
		r.Commit("loosen far", map[string]string{"experiments/tol.yaml": strings.Replace(readFile(t, filepath.Join(r.Peer, "experiments", "tol.yaml")),
			"{name: far, abs: 0.5}", "{name: far, abs: 1e12}", 1)})
		if _, err := gitpeer.Git(r.clone, "pull", "-q", "--ff-only", "origin", "main"); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(readFile(t, filepath.Join(r.clone, "experiments", "tol.yaml")), "abs: 1e12") {
			t.Fatal("the clone's experiment file was not loosened")
		}
		code, res, _ := r.reproduce(t, r.folder(t, "tol-far"))
		m := metricVerdicts(res.Reproduction)
		if code != 1 || res.Verdict != attest.VerdictDiffers || m["far"] != attest.ItemDiffers {
			t.Fatalf("exit %d, verdict %q, metrics %v: judged by the loosened file", code, res.Verdict, m)
		}
		for _, mc := range res.Reproduction.Metrics {
			if mc.Name == "far" && (mc.Tolerance == nil || mc.Tolerance.Abs != 0.5) {
				t.Errorf("far's tolerance %+v, want the attested abs 0.5", mc.Tolerance)
			}
		}
	})

	t.Run("tampered folder refused before any execution", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "results", "det", filepath.Base(r.folder(t, "det")))
		copyDir(t, r.folder(t, "det"), dir)
		p := filepath.Join(dir, "run.json")
		data, _ := os.ReadFile(p)
		os.WriteFile(p, bytes.Replace(data, []byte(`"seed": 7`), []byte(`"seed": 8`), 1), 0o644)
		before := r.starts("det")
		code, res, _ := r.reproduce(t, dir, "--repo", r.clone)
		if code != 1 || res.Verdict != "refused" || !strings.Contains(res.Refused, "does not verify") || !strings.Contains(res.Refused, "run.json") {
			t.Fatalf("exit %d, verdict %q, refused %q", code, res.Verdict, res.Refused)
		}
		if r.starts("det") != before {
			t.Fatalf("a process of the tampered run was started (%d starts, %d before)", r.starts("det"), before)
		}
	})

	t.Run("a folder of run folders: each reproduced or refused on its own", func(t *testing.T) {
		// A results folder as a pull request might bring it: a genuine run,
		// the same run filed under another experiment, and an unsigned
		// folder. Only the genuine one runs; the others are named.
		root := filepath.Join(t.TempDir(), "results")
		id := filepath.Base(r.folder(t, "det"))
		copyDir(t, r.folder(t, "det"), filepath.Join(root, "det", id))
		copyDir(t, r.folder(t, "det"), filepath.Join(root, "clock", id))
		unsigned := filepath.Join(root, "det", strings.Repeat("f0", 32))
		copyDir(t, r.folder(t, "det"), unsigned)
		if err := os.Remove(filepath.Join(unsigned, "provenance.intoto.jsonl")); err != nil {
			t.Fatal(err)
		}
		before := r.starts("det")
		code, stdout, stderr := runBinary(t, "reproduce", "--key", r.pub, "--store", r.store, "--state", r.state, "-o", "json",
			"--progress", "none", "--repo", r.clone, root)
		var out struct{ Results []reproduceJSON }
		if err := json.Unmarshal([]byte(stdout), &out); err != nil {
			t.Fatalf("exit %d, no JSON (%v):\n%s\n%s", code, err, stdout, stderr)
		}
		verdicts := map[string]string{}
		for _, res := range out.Results {
			rel, _ := filepath.Rel(root, filepath.Clean(res.Path))
			verdicts[rel] = res.Verdict
			if res.Verdict == "refused" && res.Refused == "" {
				t.Errorf("%s refused without a reason", rel)
			}
		}
		want := map[string]string{
			filepath.Join("det", id):                       attest.VerdictIdentical,
			filepath.Join("clock", id):                     "refused",
			filepath.Join("det", strings.Repeat("f0", 32)): "refused",
		}
		if code != 1 || len(verdicts) != len(want) {
			t.Fatalf("exit %d, verdicts %v; want exit 1 and %v\n%s", code, verdicts, want, stderr)
		}
		for k, v := range want {
			if verdicts[k] != v {
				t.Errorf("%s: verdict %q, want %q", k, verdicts[k], v)
			}
		}
		if r.starts("det") != before+1 {
			t.Errorf("%d processes of det started, want 1 (the genuine folder only)", r.starts("det")-before)
		}
	})

	t.Run("input gone from its URL but in the store reproduces", func(t *testing.T) {
		r.mode.Store(1)
		defer r.mode.Store(0)
		code, res, stderr := r.reproduce(t, r.folder(t, "fetch"))
		if code != 0 || res.Verdict != attest.VerdictIdentical || res.Reproduction.Materials.Inputs[0].From != "store" {
			t.Fatalf("exit %d, verdict %q, %+v\n%s", code, res.Verdict, res.Reproduction, stderr)
		}
	})

	t.Run("input gone and not in the store: said before anything runs", func(t *testing.T) {
		r.mode.Store(1)
		defer r.mode.Store(0)
		before := r.starts("fetch")
		code, res, _ := runReproduceFreshStore(t, r, r.folder(t, "fetch"))
		if code != 1 || res.Verdict != "cannot-reproduce" || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Why, "404") {
			t.Fatalf("exit %d, verdict %q, problems %+v", code, res.Verdict, res.Problems)
		}
		r.mode.Store(2)
		code, res, _ = runReproduceFreshStore(t, r, r.folder(t, "fetch"))
		if code != 1 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Why, "now serves bytes with sha256") {
			t.Fatalf("other bytes: exit %d, problems %+v", code, res.Problems)
		}
		if r.starts("fetch") != before {
			t.Fatal("a process was started")
		}
	})

	t.Run("context tree by ID from the repository's URL, or missing from the repository", func(t *testing.T) {
		dir := filepath.Join(t.TempDir(), "results", "det", filepath.Base(r.folder(t, "det")))
		copyDir(t, r.folder(t, "det"), dir) // outside any clone
		code, res, stderr := r.reproduce(t, dir, "--repo", r.URL(), "--allow-http")
		if code != 0 || res.Verdict != attest.VerdictIdentical {
			t.Fatalf("--repo URL: exit %d, verdict %q %+v\n%s", code, res.Verdict, res.Problems, stderr)
		}
		other := t.TempDir()
		if _, err := gitpeer.Git(other, "init", "-q"); err != nil {
			t.Fatal(err)
		}
		before := r.starts("det")
		code, res, _ = r.reproduce(t, dir, "--repo", other)
		if code != 1 || len(res.Problems) != 1 || res.Problems[0].Check != "context" || !strings.Contains(res.Problems[0].Why, "is not in the repository") {
			t.Fatalf("another repository: exit %d, problems %+v", code, res.Problems)
		}
		code, res, _ = r.reproduce(t, dir) // outside any repository, none given
		if code != 1 || len(res.Problems) != 1 || !strings.Contains(res.Problems[0].Fix, "--repo") {
			t.Fatalf("no repository: exit %d, problems %+v", code, res.Problems)
		}
		if r.starts("det") != before {
			t.Fatal("a process was started")
		}
	})

	t.Run("a GPU run on a machine without one", func(t *testing.T) {
		before := r.starts("gpu")
		code, res, _ := r.reproduce(t, r.folder(t, "gpu"))
		if code != 1 || len(res.Problems) != 1 || res.Problems[0].Check != "gpu" || r.starts("gpu") != before {
			t.Fatalf("exit %d, problems %+v, %d starts (%d before)", code, res.Problems, r.starts("gpu"), before)
		}
		if code, res, _ := r.reproduce(t, r.folder(t, "gpu"), "--gpus", "1"); code != 0 || res.Verdict != attest.VerdictIdentical {
			t.Errorf("with --gpus 1: exit %d, verdict %q", code, res.Verdict)
		}
	})

	t.Run("the statement verifies with expsync verify and cosign", func(t *testing.T) {
		dir := r.folder(t, "det")
		code, res, _ := r.reproduce(t, dir, "--write", "--signing-key", r.key)
		if code != 0 || res.Statement == "" {
			t.Fatalf("exit %d, statement %q", code, res.Statement)
		}
		code, out, stderr := runBinary(t, "verify", "--key", r.pub, "--repo", r.clone, dir)
		if code != 0 || !strings.Contains(out, "1 verified, 0 failed") {
			t.Fatalf("expsync verify exited %d:\n%s\n%s", code, out, stderr)
		}
		code, out, _ = runBinary(t, "verify", "--key", r.pub, "-o", "json", res.Statement)
		if code != 0 || !strings.Contains(out, `"verdict": "identical"`) {
			t.Errorf("verify the statement's path: exit %d\n%s", code, out)
		}
		cosignVerifiesReproduction(t, r.pub, res.Statement, filepath.Join(dir, "run.json"))

		// A statement signed by another key is flagged.
		other, _ := testkeys.Write(t, t.TempDir(), "other")
		forged := filepath.Join(t.TempDir(), "results", "det", filepath.Base(dir))
		copyDir(t, dir, forged)
		if code, res, _ := r.reproduce(t, forged, "--write", "--signing-key", other, "--repo", r.clone); code != 0 || res.Statement == "" {
			t.Fatalf("reproduce with another key: exit %d", code)
		}
		code, out, _ = runBinary(t, "verify", "--key", r.pub, "--repo", r.clone, forged)
		if code != 1 || !strings.Contains(out, "failed reproduction") || !strings.Contains(out, "0 of 1 required trusted keys signed") {
			t.Errorf("a statement by an untrusted key: verify exited %d:\n%s", code, out)
		}
	})
}

// runReproduceFreshStore reproduces with an empty store (another machine).
func runReproduceFreshStore(t *testing.T, r *reproLab, folder string) (int, reproduceJSON, string) {
	t.Helper()
	return r.reproduceWith(t, folder, filepath.Join(t.TempDir(), "store"))
}

func (r *reproLab) reproduceWith(t *testing.T, folder, store string) (int, reproduceJSON, string) {
	t.Helper()
	saved := r.store
	r.store = store
	defer func() { r.store = saved }()
	return r.reproduce(t, folder)
}

func copyDir(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.WalkDir(src, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(target, data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
}

func regexpLine(text, pattern string) bool {
	return regexp.MustCompile(`(?m)` + pattern).MatchString(text)
}
