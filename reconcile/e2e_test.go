package reconcile

import (
	"context"
	"github.com/expsync/expsync/internal/gitpeer"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

func readRecord(t testing.TB, dir string) *results.Record {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, results.RunFile))
	if err != nil {
		t.Fatal(err)
	}
	rec, err := results.ParseRecord(data)
	if err != nil {
		t.Fatal(err)
	}
	return rec
}

// TestRunCommitsVerifiedResults pushes a sweep and a failing experiment,
// reconciles, and checks the results commit in a fresh clone: one folder
// per run with signed, verifiable files, the failure recorded as a result,
// no credential anywhere; a second reconcile commits nothing.
func TestRunCommitsVerifiedResults(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	source := h.Commit("experiments", merge(squareExperiment(marker, "1, 2, 3"), failingExperiment()))

	rep := h.reconcile()
	want := Report{Commit: source, Planned: 4, Executed: 4, Succeeded: 3, Failed: 1}
	if diff := cmp.Diff(want, *rep, cmpReport); diff != "" {
		t.Errorf("report (-want +got):\n%s", diff)
	}
	if len(rep.Commits) != 1 || rep.Commits[0] != h.Head() {
		t.Fatalf("want one results commit at the head %s, got %v", h.Head(), rep.Commits)
	}
	clone := h.Clone()
	if parent := h.Git(clone, "rev-parse", "HEAD^"); parent != source {
		t.Errorf("results commit's parent is %s, want the experiments commit %s", parent, source)
	}
	if changed := h.Git(clone, "diff", "--name-only", "HEAD^", "HEAD"); strings.Contains(changed, "experiments/") {
		t.Errorf("the results commit touched experiments:\n%s", changed)
	}
	squares := runFolders(t, clone, "square")
	if len(squares) != 3 {
		t.Fatalf("want 3 square folders, got %v", squares)
	}
	got := map[string]bool{}
	for _, dir := range squares {
		if err := h.verifyFolder(dir); err != nil {
			t.Errorf("verify %s: %v", dir, err)
		}
		rec := readRecord(t, dir)
		if rec.RunID != filepath.Base(dir) || rec.Status != contract.Succeeded || rec.Commit != source || rec.Ref != "refs/heads/main" {
			t.Errorf("%s: run.json %+v", dir, rec)
		}
		out, err := os.ReadFile(filepath.Join(dir, "outputs/out/result.txt"))
		if err != nil {
			t.Errorf("committed output missing: %v", err)
		}
		got[strings.TrimSpace(string(out))] = true
		if len(rec.Outputs) != 1 || !rec.Outputs[0].Committed {
			t.Errorf("%s: outputs %+v", dir, rec.Outputs)
		}
	}
	if diff := cmp.Diff(map[string]bool{"1": true, "4": true, "9": true}, got); diff != "" {
		t.Errorf("outputs (-want +got):\n%s", diff)
	}
	broken := runFolders(t, clone, "broken")
	if len(broken) != 1 {
		t.Fatalf("want 1 broken folder, got %v", broken)
	}
	if err := h.verifyFolder(broken[0]); err != nil {
		t.Errorf("a failed run must verify too: %v", err)
	}
	rec := readRecord(t, broken[0])
	if rec.Status != contract.Failed || rec.ExitCode != 3 {
		t.Errorf("failing run recorded as %s exit %d", rec.Status, rec.ExitCode)
	}
	if log, _ := os.ReadFile(filepath.Join(broken[0], results.LogFile)); !strings.Contains(string(log), "boom") {
		t.Errorf("failed run's log lacks its stderr: %q", log)
	}
	readme, _ := os.ReadFile(filepath.Join(clone, "results/square/README.md"))
	for _, want := range []string{"3 verified runs: 3 succeeded", "| x |", "plot.svg"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("square README lacks %q:\n%s", want, readme)
		}
	}
	// No credential anywhere in what was committed.
	if out, _ := gitpeer.Git(clone, "grep", "-I", "-l", gitPassword, "HEAD"); out != "" {
		t.Errorf("the password was committed in: %s", out)
	}

	// Again: nothing new, nothing runs, nothing is committed.
	head := h.Head()
	rep = h.reconcile()
	if !rep.NothingToDo() || rep.Done != 4 {
		t.Errorf("second reconcile did something: %+v", rep)
	}
	if h.Head() != head {
		t.Errorf("second reconcile moved main from %s to %s", head, h.Head())
	}
	if lines := markerLines(t, marker); len(lines) != 3 {
		t.Errorf("square ran %d times, want 3: %v", len(lines), lines)
	}
}

var cmpReport = cmp.FilterPath(func(p cmp.Path) bool {
	f := p.Last().String()
	return f == ".Commits" || f == ".Untrusted" || f == ".RunIDs"
}, cmp.Ignore())

// TestSweepChangeRunsOnlyNewPoints: adding one sweep value runs exactly that
// point; a commit that only touches results runs nothing.
func TestSweepChangeRunsOnlyNewPoints(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("sweep", squareExperiment(marker, "1, 2, 3"))
	h.reconcile()

	h.Pull()
	h.Commit("one more point", squareExperiment(marker, "1, 2, 3, 5"))
	rep := h.reconcile()
	if rep.Executed != 1 || rep.Done != 3 || len(rep.Commits) != 1 {
		t.Errorf("adding a point: %+v", rep)
	}
	if diff := cmp.Diff([]string{"1", "2", "3", "5"}, markerLines(t, marker)); diff != "" {
		t.Errorf("executions (-want +got):\n%s", diff)
	}
	clone := h.Clone()
	if n := len(runFolders(t, clone, "square")); n != 4 {
		t.Errorf("want 4 folders after adding a point, got %d", n)
	}
	if changed := h.Git(clone, "diff", "--name-only", "HEAD^", "HEAD"); strings.Count(changed, "/run.json") != 1 {
		t.Errorf("the second results commit should add exactly one run folder:\n%s", changed)
	}

	// A results-only commit (a reviewer's note in the README) runs nothing.
	h.Pull()
	h.Commit("note", map[string]string{"results/square/NOTES.md": "looks good\n"})
	head := h.Head()
	rep = h.reconcile()
	if !rep.NothingToDo() || h.Head() != head {
		t.Errorf("a results commit created work: %+v", rep)
	}
	if n := len(markerLines(t, marker)); n != 4 {
		t.Errorf("a results commit ran %d runs", n-4)
	}
}

// TestForcePushRecommitsFromRunCache: a force-push that drops the results
// commit costs a re-commit from the run cache, not a rerun.
func TestForcePushRecommitsFromRunCache(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	source := h.Commit("sweep", squareExperiment(marker, "1, 2"))
	first := h.reconcile()
	h.Pull()
	before := h.Clone()
	// The peer force-pushes main back to the experiments commit.
	h.Git(h.Peer, "push", "-q", "--force", "origin", source+":refs/heads/main")
	if h.Head() != source {
		t.Fatal("force-push did not land")
	}
	rep := h.reconcile()
	if rep.Recovered != 2 || rep.Executed != 0 || len(rep.Commits) != 1 {
		t.Errorf("after the force-push: %+v (first run: %+v)", rep, first)
	}
	if n := len(markerLines(t, marker)); n != 2 {
		t.Errorf("runs executed %d times, want 2", n)
	}
	after := h.Clone()
	for _, dir := range runFolders(t, after, "square") {
		if err := h.verifyFolder(dir); err != nil {
			t.Errorf("re-committed folder does not verify: %v", err)
		}
		old := filepath.Join(before, "results/square", filepath.Base(dir))
		// The same result, attested again for the branch: the record and the
		// metrics are byte for byte the same (the signature is new).
		for _, f := range []string{results.RunFile, results.MetricsFile, "outputs/out/result.txt"} {
			a, _ := os.ReadFile(filepath.Join(old, f))
			b, _ := os.ReadFile(filepath.Join(dir, f))
			if string(a) != string(b) {
				t.Errorf("%s of %s differs after re-commit", f, filepath.Base(dir))
			}
		}
	}
}

// TestForgedOrCopiedEnvelopeIsNotDone: results folders pushed by hand — an
// envelope copied from another run, or one signed by an unknown key — do not
// make a run done; the run executes and its genuine folder replaces them.
func TestForgedOrCopiedEnvelopeIsNotDone(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("sweep", squareExperiment(marker, "1"))
	h.reconcile()
	h.Pull()
	genuine := runFolders(t, h.Peer, "square")[0]

	// Plan x=2 and x=3 and learn their IDs from a dry plan of the commit.
	files := squareExperiment(marker, "1, 2, 3")
	ids := planIDs(t, files)
	var copied, forged string
	for _, id := range ids {
		if id != filepath.Base(genuine) && copied == "" {
			copied = id
		} else if id != filepath.Base(genuine) {
			forged = id
		}
	}
	// Copied: the genuine folder of x=1 under x=2's ID.
	for _, f := range []string{results.RunFile, results.MetricsFile, results.EnvelopeFile, results.LogFile, "outputs/out/result.txt"} {
		data, err := os.ReadFile(filepath.Join(genuine, f))
		if err != nil {
			t.Fatal(err)
		}
		files["results/square/"+copied+"/"+f] = string(data)
	}
	// Forged: x=3's folder with run.json rewritten for its ID and signed by
	// a key nobody trusts.
	for name, data := range forgeFolder(t, genuine, forged) {
		files["results/square/"+forged+"/"+name] = data
	}
	h.Commit("hand-made results", files)

	rep := h.reconcile()
	if rep.Executed != 2 || rep.Done != 1 {
		t.Errorf("forged folders counted as done: %+v", rep)
	}
	if diff := cmp.Diff(sortedCopy([]string{"results/square/" + copied, "results/square/" + forged}), sortedCopy(rep.Untrusted)); diff != "" {
		t.Errorf("untrusted folders (-want +got):\n%s", diff)
	}
	clone := h.Clone()
	for _, id := range []string{copied, forged} {
		dir := filepath.Join(clone, "results/square", id)
		if err := h.verifyFolder(dir); err != nil {
			t.Errorf("folder %s not replaced by a genuine one: %v", id, err)
		}
		if rec := readRecord(t, dir); rec.RunID != id {
			t.Errorf("folder %s holds run %s", id, rec.RunID)
		}
	}
	if diff := cmp.Diff([]string{"1", "2", "3"}, markerLines(t, marker)); diff != "" {
		t.Errorf("executions (-want +got):\n%s", diff)
	}
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// TestFailedInputNeverStarts: a URL input whose bytes do not match its
// declared sha256 ends the run as InputMismatch before the command starts,
// and that result is committed.
func TestFailedInputNeverStarts(t *testing.T) {
	h := newHarness(t)
	srv := serveBytes(t, "the real data\n")
	marker := filepath.Join(t.TempDir(), "marker")
	wrong := strings.Repeat("ab", 32)
	h.Commit("input", map[string]string{"experiments/in/in.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: with-input
spec:
  image: host
  command: ["sh", "-c", "echo started >> ` + marker + `"]
  inputs:
    - {name: data, uri: "` + srv + `/data.txt", sha256: ` + wrong + `, path: inputs/data.txt}
  resources: {cpu: 100m}
`})
	rep := h.reconcile()
	if rep.Executed != 1 || rep.Failed != 1 {
		t.Errorf("report: %+v", rep)
	}
	if lines := markerLines(t, marker); len(lines) != 0 {
		t.Errorf("the command started despite the wrong digest")
	}
	clone := h.Clone()
	dirs := runFolders(t, clone, "with-input")
	if len(dirs) != 1 {
		t.Fatalf("folders: %v", dirs)
	}
	rec := readRecord(t, dirs[0])
	if rec.Status != "InputMismatch" || !strings.Contains(rec.Reason, wrong) {
		t.Errorf("recorded %s: %q", rec.Status, rec.Reason)
	}
	if err := h.verifyFolder(dirs[0]); err != nil {
		t.Errorf("verify: %v", err)
	}
}

// planIDs plans files as a repository and returns the run IDs.
func planIDs(t testing.TB, files map[string]string) []string {
	t.Helper()
	plan, err := render.Plan(tree.MemoryOf(files), render.PlanOptions{Mode: v1alpha1.ModeLocal})
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, r := range plan.Runs {
		ids = append(ids, r.ID)
	}
	return ids
}

// serveBytes serves content at any path over HTTP on loopback.
func serveBytes(t testing.TB, content string) string {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte(content))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// forgeFolder makes a folder for run id from a genuine folder: run.json
// rewritten for id, a statement consistent with the files, signed by a key
// nobody trusts. Only the key gives it away.
func forgeFolder(t testing.TB, genuine, id string) map[string]string {
	t.Helper()
	rec := readRecord(t, genuine)
	rec.RunID = id
	runJSON, err := results.MarshalRecord(rec)
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := os.ReadFile(filepath.Join(genuine, results.MetricsFile))
	keyFile, _ := writeKeyPair(t, t.TempDir(), "mallory")
	signer, err := attest.LoadSigner(context.Background(), keyFile)
	if err != nil {
		t.Fatal(err)
	}
	env, err := attest.SignRun(attest.Run{
		RunID: id, Experiment: rec.Experiment, Repository: rec.Repository, Ref: rec.Ref, Commit: rec.Commit,
		ContextTree: rec.ContextTree, SpecPath: rec.SpecPath, SpecBlob: rec.SpecBlob, Image: rec.Image, Params: rec.Params,
		StartedOn: rec.StartedAt, FinishedOn: rec.FinishedAt, Status: string(rec.Status),
		Subjects: []attest.Subject{{Name: results.RunFile, SHA256: contract.SHA256Hex(runJSON)}, {Name: results.MetricsFile, SHA256: contract.SHA256Hex(metrics)}},
	}, signer)
	if err != nil {
		t.Fatal(err)
	}
	return map[string]string{results.RunFile: string(runJSON), results.MetricsFile: string(metrics), results.EnvelopeFile: string(env) + "\n"}
}
