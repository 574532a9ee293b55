package reconcile

import (
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// besideCode is the usual layout (examples/experiments): each experiment
// file sits in its own context folder, next to its code and a sibling
// experiment. Both runs append their name to marker.
func besideCode(marker, xs, timeout, siblingComment string) map[string]string {
	return map[string]string{
		"experiments/lab/square.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: square}
spec:
  image: host
  command: ["sh", "run.sh", "{{params.x}}"]
  env: [{name: MARKER, value: "` + marker + `"}]
  sweep: {matrix: {x: [` + xs + `]}}
  outputs: [out/result.txt]
  timeout: ` + timeout + `
`,
		"experiments/lab/cube.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: cube}
spec:
  image: host   # ` + siblingComment + `
  command: ["sh", "run.sh", "c"]
  env: [{name: MARKER, value: "` + marker + `"}]
  outputs: [out/result.txt]
`,
		"experiments/lab/run.sh": "set -e\necho \"$1\" >> \"$MARKER\"\nmkdir -p out\necho \"$1\" > out/result.txt\n",
	}
}

// TestSpecEditsBesideTheCodeRerunNothing, through real commits:
// a timeout change and an edit of a sibling experiment file in the same
// folder run nothing; one more sweep value runs exactly that point; a code
// change reruns every run of the folder. The committed results verify.
func TestSpecEditsBesideTheCodeRerunNothing(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("lab", besideCode(marker, "1, 2", "1m", "first"))
	if rep := h.reconcile(); rep.Executed != 3 {
		t.Fatalf("first commit: %+v", rep)
	}

	h.Pull()
	h.Commit("scheduling and a sibling's comment", besideCode(marker, "1, 2", "2m", "second"))
	if rep := h.reconcile(); !rep.NothingToDo() || rep.Done != 3 {
		t.Errorf("a timeout and a sibling comment created work: %+v", rep)
	}

	h.Pull()
	h.Commit("one more point", besideCode(marker, "1, 2, 3", "2m", "second"))
	if rep := h.reconcile(); rep.Executed != 1 || rep.Done != 3 {
		t.Errorf("adding a point: %+v", rep)
	}
	if diff := cmp.Diff([]string{"1", "2", "3", "c"}, markerLines(t, marker)); diff != "" {
		t.Errorf("executions (-want +got):\n%s", diff)
	}

	h.Pull()
	code := besideCode(marker, "1, 2, 3", "2m", "second")
	h.Commit("code", map[string]string{"experiments/lab/run.sh": code["experiments/lab/run.sh"] + "# changed\n"})
	if rep := h.reconcile(); rep.Executed != 4 {
		t.Errorf("a code change: %+v", rep)
	}
	clone := h.Clone()
	folders := append(runFolders(t, clone, "square"), runFolders(t, clone, "cube")...)
	if len(folders) != 8 {
		t.Errorf("%d run folders, want 8", len(folders))
	}
	for _, f := range folders {
		if err := h.verifyFolder(f); err != nil {
			t.Errorf("%s: %v", strings.TrimPrefix(f, clone), err)
		}
	}
}
