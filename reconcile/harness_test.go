package reconcile

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/testkeys"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

const (
	gitUser     = "lab"
	gitPassword = "pa55-w0rd-never-logged"
)

// harness is a real Git server on loopback (git's smart HTTP behind
// gittestserver, with basic auth), a peer clone driven by the git CLI, a
// signing key, and the store and state folders of one expsync deployment.
type harness struct {
	*gitpeer.Lab
	t                  *testing.T
	key, pub           string
	storeDir, stateDir string
	batch              time.Duration
	events             []Event
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	h := &harness{Lab: gitpeer.New(t, &gitpeer.Auth{Username: gitUser, Password: gitPassword}),
		t: t, storeDir: t.TempDir(), stateDir: t.TempDir(), batch: time.Hour}
	h.key, h.pub = writeKeyPair(t, t.TempDir(), "expsync")
	return h
}

// writeKeyPair makes a signing key without a passphrase.
func writeKeyPair(t testing.TB, dir, name string) (key, pub string) {
	return testkeys.Write(t, dir, name)
}

// open opens the deployment as one `expsync run` invocation does.
func (h *harness) open(ctx context.Context) *localDeployment {
	h.t.Helper()
	l, err := openLocal(ctx, localOptions{
		StoreDir: h.storeDir, StateDir: h.stateDir, Key: h.key, BatchInterval: h.batch, Concurrency: 2,
		Events: func(e Event) { h.events = append(h.events, e) },
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return l
}

func (h *harness) source(l *localDeployment) *gitsource.Source {
	h.t.Helper()
	src, err := l.Source(gitsource.Repository{
		URL: h.URL(), Auth: &gitsource.Auth{Username: gitUser, Password: gitPassword},
		URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
		Refs:      []gitsource.RefPolicy{{Pattern: "main", Trusted: true}},
	})
	if err != nil {
		h.t.Fatal(err)
	}
	return src
}

// localDeployment is the embedded deployment with the parts
// internal/deploy assembles (which imports this package, so its Open
// cannot serve these tests): a local store, the local executor and a
// signing key file without a passphrase.
type localDeployment struct {
	Reconciler *Reconciler
	Executor   *local.Executor
	Store      *store.Local
	stateDir   string
}

type localOptions struct {
	StoreDir, StateDir, Key string
	BatchInterval           time.Duration
	Concurrency             int
	Events                  func(Event)
}

func openLocal(ctx context.Context, opts localOptions) (*localDeployment, error) {
	st, err := store.OpenLocal(opts.StoreDir)
	if err != nil {
		return nil, err
	}
	signer, err := attest.LoadSigner(ctx, opts.Key)
	if err != nil {
		return nil, err
	}
	own, err := attest.NewKey(opts.Key, signer.Public())
	if err != nil {
		return nil, err
	}
	ex, _, err := local.Open(ctx, local.DeploymentOptions{Store: st, StateDir: opts.StateDir, Concurrency: opts.Concurrency})
	if err != nil {
		return nil, err
	}
	r := &Reconciler{Store: st, Executor: ex, Signer: signer, Trusted: attest.Verifiers{own}, BuilderID: attest.DefaultBuilderID,
		ExecutorName: "local", Plan: render.PlanOptions{StoreURL: "file://" + st.Root()}, BatchInterval: opts.BatchInterval, Events: opts.Events}
	return &localDeployment{Reconciler: r, Executor: ex, Store: st, stateDir: opts.StateDir}, nil
}

func (l *localDeployment) Source(repo gitsource.Repository) (*gitsource.Source, error) {
	return gitsource.New(repo, filepath.Join(l.stateDir, "git"))
}

func (l *localDeployment) ReconcileRef(ctx context.Context, src *gitsource.Source, ch gitsource.RefChange) (*Report, error) {
	return RefReconciler{Reconciler: l.Reconciler}.ReconcileRef(ctx, src, ch)
}

func (l *localDeployment) Serve(ctx context.Context, sources []*gitsource.Source, opts ServeOptions) error {
	return RefReconciler{Reconciler: l.Reconciler}.Serve(ctx, sources, opts)
}

func (l *localDeployment) Close(ctx context.Context) error { return l.Executor.Shutdown(ctx) }

// mainChange polls and returns main's change.
func (h *harness) mainChange(ctx context.Context, src *gitsource.Source) gitsource.RefChange {
	h.t.Helper()
	changes, err := src.Poll(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range changes {
		if c.Ref == "refs/heads/main" {
			return c
		}
	}
	h.t.Fatalf("main not reported by Poll: %+v", changes)
	return gitsource.RefChange{}
}

// reconcile is one `expsync run` of main.
func (h *harness) reconcile() *Report {
	h.t.Helper()
	rep, err := h.reconcileErr()
	if err != nil {
		h.t.Fatalf("reconcile: %v", err)
	}
	return rep
}

func (h *harness) reconcileErr() (*Report, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	src := h.source(l)
	return l.ReconcileRef(ctx, src, h.mainChange(ctx, src))
}

// runFolders lists results/<exp>/<id> folders of a checkout.
func runFolders(t testing.TB, dir, experiment string) []string {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, "results", experiment))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range entries {
		if e.IsDir() {
			out = append(out, filepath.Join(dir, "results", experiment, e.Name()))
		}
	}
	sort.Strings(out)
	return out
}

// verifyFolder runs attest's library check (what `expsync verify` runs).
func (h *harness) verifyFolder(dir string) error {
	h.t.Helper()
	k, err := attest.LoadVerifierKey(context.Background(), h.pub)
	if err != nil {
		h.t.Fatal(err)
	}
	_, err = attest.VerifyFolder(dir, attest.FolderOptions{Keys: attest.Verifiers{k}})
	return err
}

// markerLines counts the executions an experiment recorded in its marker.
func markerLines(t testing.TB, file string) []string {
	t.Helper()
	data, err := os.ReadFile(file)
	if os.IsNotExist(err) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.Fields(string(data))
	sort.Strings(lines)
	return lines
}

// squareExperiment is a sweep over x whose runs append x to marker (an
// absolute path outside the work folder), so a test counts executions.
//
// The experiment file lives outside its context (code/square); the layout
// with the file inside its context is TestSpecEditsBesideTheCodeRerunNothing.
func squareExperiment(marker string, xs string) map[string]string {
	return map[string]string{
		"experiments/square.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: square
spec:
  image: host
  command: ["sh", "square.sh", "{{params.x}}"]
  context: code/square
  env:
    - {name: MARKER, value: "` + marker + `"}
  sweep:
    matrix:
      x: [` + xs + `]
  outputs: [out/result.txt]
  metrics: out/metrics.json
  resources: {cpu: 100m, memory: 16Mi}
  timeout: 1m
`,
		"code/square/square.sh": `set -e
echo "$1" >> "$MARKER"
mkdir -p out
echo $(($1 * $1)) > out/result.txt
printf '{"square": %d, "x": %d}\n' $(($1 * $1)) "$1" > out/metrics.json
echo "squared $1"
`,
	}
}

func failingExperiment() map[string]string {
	return map[string]string{
		"experiments/broken/broken.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: broken
spec:
  image: host
  command: ["sh", "-c", "echo boom >&2; exit 3"]
  resources: {cpu: 100m}
`,
	}
}

func merge(maps ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range maps {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

// textLogger logs as serve does (text records) into b, under mu.
func textLogger(mu *sync.Mutex, b *strings.Builder) *slog.Logger {
	return slog.New(slog.NewTextHandler(lockedWriter{mu, b}, nil))
}

type lockedWriter struct {
	mu *sync.Mutex
	w  io.Writer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}
