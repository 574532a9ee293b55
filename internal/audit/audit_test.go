package audit_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/audit"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/reproduce"
	"github.com/expsync/expsync/internal/testkeys"
	"github.com/expsync/expsync/reconcile"
)

// sweep is an experiment of six deterministic runs.
const sweep = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: sq
spec:
  image: host
  command: [sh, -c, "mkdir -p out; echo $(( {{params.x}} * {{params.x}} )) > out/sq.txt; echo '{\"sq\": '$(( {{params.x}} * {{params.x}} ))'}' > out/m.json"]
  sweep: {matrix: {x: [1, 2, 3, 4, 5, 6]}}
  outputs: [out/sq.txt]
  metrics: out/m.json
`

type auditLab struct {
	*gitpeer.Lab
	deploy *deploy.Deployment
	src    *gitsource.Source
	key    string
	state  string
}

// newAuditLab commits the sweep to a real Git server and runs it once.
func newAuditLab(t *testing.T) *auditLab {
	t.Helper()
	l := &auditLab{Lab: gitpeer.New(t, nil), state: t.TempDir()}
	l.key, _ = testkeys.Write(t, t.TempDir(), "deploy")
	l.Commit("sweep", map[string]string{"experiments/sq.yaml": sweep})
	ctx := testCtx(t)
	d, err := deploy.Open(ctx, deploy.Options{StoreDir: filepath.Join(l.state, "store"), StateDir: filepath.Join(l.state, "state"),
		Key: l.key, BatchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close(context.Background()) })
	l.deploy = d
	l.src, err = d.Source(gitsource.Repository{URL: l.URL(), Refs: []gitsource.RefPolicy{{Pattern: "main", Trusted: true}}, URLPolicy: gitsource.URLPolicy{AllowHTTP: true}})
	if err != nil {
		t.Fatal(err)
	}
	l.reconcile(t)
	return l
}

func (l *auditLab) reconcile(t *testing.T) *reconcile.Report {
	t.Helper()
	changes, err := l.src.Poll(testCtx(t))
	if err != nil {
		t.Fatal(err)
	}
	var rep *reconcile.Report
	for _, ch := range changes {
		if rep, err = l.deploy.Refs.ReconcileRef(testCtx(t), l.src, ch); err != nil {
			t.Fatal(err)
		}
	}
	return rep
}

func (l *auditLab) auditor(t *testing.T, fraction float64, perBranch int) *audit.Auditor {
	t.Helper()
	keys := func() (*attest.Signer, attest.Verifiers, error) {
		s, err := attest.LoadSigner(context.Background(), l.key)
		if err != nil {
			return nil, nil, err
		}
		k, err := attest.NewKey("deploy", s.Public())
		return s, attest.Verifiers{k}, err
	}
	a, err := audit.New(audit.Options{Fraction: fraction, PerBranch: perBranch, Keys: keys, Store: l.deploy.Store,
		StateDir: filepath.Join(l.state, "audit"), Logger: slog.New(slog.NewTextHandler(t.Output(), nil))})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// statements lists the run IDs with a statement in a fresh clone, and
// checks that each verifies with its folder.
func (l *auditLab) statements(t *testing.T, pub string) (clone string, reproduced []string) {
	t.Helper()
	clone = l.Clone()
	files, _ := filepath.Glob(filepath.Join(clone, "results", "sq", "*", "reproductions", "*.intoto.jsonl"))
	k, err := attest.LoadVerifierKey(context.Background(), pub)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		dir := filepath.Dir(filepath.Dir(f))
		if _, err := attest.VerifyFolder(dir, attest.FolderOptions{Keys: attest.Verifiers{k}, Experiment: "sq"}); err != nil {
			t.Errorf("%s: %v", dir, err)
		}
		reproduced = append(reproduced, filepath.Base(dir))
	}
	sort.Strings(reproduced)
	return clone, reproduced
}

func testCtx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// TestAuditReproducesTheSampleOnce: audits with fraction 1 and two runs per
// audit reproduce the six runs two by two, commit a verifying statement
// for each and a README listing them, then find nothing more to do; the
// planner still finds every run done.
func TestAuditReproducesTheSampleOnce(t *testing.T) {
	l := newAuditLab(t)
	pub := strings.TrimSuffix(l.key, ".key") + ".pub"
	a := l.auditor(t, 1, 2)
	for i, want := range []int{2, 4, 6, 6} {
		if err := a.Audit(testCtx(t), l.src, "main"); err != nil {
			t.Fatalf("audit %d: %v", i, err)
		}
		_, got := l.statements(t, pub)
		if len(got) != want {
			t.Fatalf("after audit %d: %d runs reproduced, want %d", i, len(got), want)
		}
	}
	clone, _ := l.statements(t, pub)
	readme, _ := os.ReadFile(filepath.Join(clone, "results", "sq", "README.md"))
	for _, want := range []string{"| reproduced |", "## Reproductions", "6 reproductions of these runs executed again from their attestations alone", "6 identical"} {
		if !strings.Contains(string(readme), want) {
			t.Errorf("README lacks %q:\n%s", want, readme)
		}
	}
	if rep := l.reconcile(t); rep != nil && !rep.NothingToDo() {
		t.Errorf("a reconcile after the audit found work: %+v", rep)
	}
}

// TestAuditSamplesDeterministically: two auditors with the same fraction
// (two serve processes) reproduce exactly the runs Sampled picks.
func TestAuditSamplesDeterministically(t *testing.T) {
	l := newAuditLab(t)
	pub := strings.TrimSuffix(l.key, ".key") + ".pub"
	for _, a := range []*audit.Auditor{l.auditor(t, 0.5, 10), l.auditor(t, 0.5, 10)} {
		if err := a.Audit(testCtx(t), l.src, "main"); err != nil {
			t.Fatal(err)
		}
	}
	clone, got := l.statements(t, pub)
	var want []string
	dirs, _ := filepath.Glob(filepath.Join(clone, "results", "sq", "*", "run.json"))
	for _, d := range dirs {
		if id := filepath.Base(filepath.Dir(d)); reproduce.Sampled(id, 0.5) {
			want = append(want, id)
		}
	}
	sort.Strings(want)
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("reproduced %v, the sample is %v", got, want)
	}
}
