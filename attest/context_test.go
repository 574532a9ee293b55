package attest

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// specBesideCode is a context holding its own experiment file: the identity
// names it without the file, the statement attests the real tree.
func specBesideCode(t *testing.T) (m *tree.Memory, real, without string) {
	t.Helper()
	m = tree.MemoryOf(map[string]string{"code/pi/estimate.py": "print(3.14)\n", "code/pi/pi.yaml": "kind: Experiment\n"})
	r, err := tree.TreeHash(m, "code/pi")
	if err != nil {
		t.Fatal(err)
	}
	w, err := tree.TreeIDWithout(m, "code/pi", []string{"pi.yaml"})
	if err != nil {
		t.Fatal(err)
	}
	return m, string(r), string(w)
}

// writeRecordFolder is writeRunFolder with contextExcluded in run.json.
func writeRecordFolder(t *testing.T, id contract.Identity, run Run, excluded []string, s *Signer) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), run.Experiment, run.RunID)
	rec, err := json.Marshal(map[string]any{"runID": run.RunID, "experiment": run.Experiment, "identity": id,
		"contextTree": run.ContextTree, "contextExcluded": excluded})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string]string{RunFile: string(rec) + "\n", MetricsFile: "{}\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if run.Subjects, err = HashFolder(dir); err != nil {
		t.Fatal(err)
	}
	env, err := SignRun(run, s)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, EnvelopeFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

func TestContextTreeWithoutSpecFiles(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	m, real, without := specBesideCode(t)
	if real == without {
		t.Fatal("fixture: removing the spec file changed nothing")
	}
	recompute := func(tr string, paths []string) (string, error) {
		if tr != real {
			return "", fmt.Errorf("tree %s not in the repository", tr)
		}
		h, err := tree.TreeIDWithout(m, "code/pi", paths)
		return string(h), err
	}
	good := testIdentity(1, func(i *contract.Identity) { i.ContextTree = without })
	goodRun := testRun(t, good)
	goodRun.ContextTree = real
	lying := testIdentity(1, func(i *contract.Identity) { i.ContextTree = real }) // names the spec file too
	lyingRun := testRun(t, lying)

	cases := []struct {
		name     string
		id       contract.Identity
		run      Run
		excluded []string
		opts     func(*FolderOptions)
		want     Status
		detail   string
	}{
		{"recomputed from the repository", good, goodRun, []string{"pi.yaml"}, func(o *FolderOptions) { o.ContextTreeWithout = recompute }, StatusOK, "without 1 spec file"},
		{"no repository at hand", good, goodRun, []string{"pi.yaml"}, nil, StatusNotChecked, "give the repository"},
		{"excluded list that does not give the identity's tree", lying, lyingRun, []string{"pi.yaml"}, func(o *FolderOptions) { o.ContextTreeWithout = recompute }, StatusFailed, "run.json identity names " + real},
		{"an excluded path leaving the context", good, goodRun, []string{"../pi.yaml"}, nil, StatusFailed, "not a clean path"},
		{"nothing excluded, trees differ", good, goodRun, nil, nil, StatusFailed, "attested " + real},
		{"attested tree missing from the repository", good, func() Run { r := goodRun; r.ContextTree = testContextTree; return r }(), []string{"pi.yaml"},
			func(o *FolderOptions) { o.ContextTreeWithout = recompute }, StatusFailed, "not in the repository"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := writeRecordFolder(t, c.id, c.run, c.excluded, s)
			opts := FolderOptions{Keys: Verifiers{keyOf(t, s)}}
			if c.opts != nil {
				c.opts(&opts)
			}
			r, _ := VerifyFolder(dir, opts)
			for _, ch := range r.Checks {
				if ch.Name != "contextTree" {
					continue
				}
				if ch.Status != c.want || !contains(ch.Detail, c.detail) {
					t.Errorf("contextTree %s %q, want %s mentioning %q", ch.Status, ch.Detail, c.want, c.detail)
				}
				if c.want != StatusFailed && !r.OK() {
					t.Errorf("folder failed: %v", r.Err())
				}
				return
			}
			t.Errorf("no contextTree check: %+v", r.Checks)
		})
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }
