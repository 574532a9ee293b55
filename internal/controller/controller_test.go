package controller

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/tree"
)

const (
	gitUser     = "lab"
	gitPassword = "pa55-w0rd-never-shown"
	// busybox is a digest-pinned image: kubernetes mode plans only those.
	// The host executor runs the command on the host, as a pod would.
	busybox = "docker.io/library/busybox@sha256:1111111111111111111111111111111111111111111111111111111111111111"
)

func squareSweep(xs string) map[string]string {
	return map[string]string{
		"experiments/square.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: square
spec:
  image: ` + busybox + `
  command: ["sh", "square.sh", "{{params.x}}"]
  context: code/square
  sweep:
    matrix:
      x: [` + xs + `]
  outputs: [out/result.txt]
  metrics: out/metrics.json
  resources: {cpu: 100m, memory: 16Mi}
  timeout: 1m
`,
		"code/square/square.sh": `set -e
mkdir -p out
echo $(($1 * $1)) > out/result.txt
printf '{"square": %d}\n' $(($1 * $1)) > out/metrics.json
`,
	}
}

// invalidExperiment has a typo three lines in: its file:line:col must
// reach the status, and it must not stop the valid experiment.
var invalidExperiment = map[string]string{"experiments/broken.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: broken
spec:
  image: ` + busybox + `
  comand: ["true"]
`}

func merge(ms ...map[string]string) map[string]string {
	out := map[string]string{}
	for _, m := range ms {
		for k, v := range m {
			out[k] = v
		}
	}
	return out
}

type fixture struct {
	url   string // the object's repository URL (default the Lab's)
	t     testing.TB
	c     client.Client
	lab   *gitpeer.Lab
	key   client.ObjectKey
	pub   *attest.Key
	execs *hostExecutors
	state string
}

func newFixture(t testing.TB, ns string) *fixture {
	cfg := apiServer(t)
	c, err := client.New(cfg, client.Options{Scheme: NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{t: t, c: c, lab: gitpeer.New(t, &gitpeer.Auth{Username: gitUser, Password: gitPassword}),
		key: client.ObjectKey{Namespace: ns, Name: "lab"}, execs: &hostExecutors{t: t, root: t.TempDir(), ex: map[string]*hostExecutor{}},
		state: t.TempDir()}
	newNamespace(t, c, ns)
	f.pub = signingSecret(t, c, ns)
	if err := c.Create(context.Background(), &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "git"},
		Data: map[string][]byte{"username": []byte(gitUser), "password": []byte(gitPassword)}}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fixture) create(interval time.Duration) {
	f.t.Helper()
	obj := &v1alpha1.ExperimentRepository{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: f.key.Name},
		Spec: v1alpha1.ExperimentRepositorySpec{
			URL: f.repoURL(), AllowHTTP: true, SecretRef: &meta.LocalObjectReference{Name: "git"},
			Refs:        []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true}},
			Interval:    &metav1.Duration{Duration: interval},
			Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
			Store:       v1alpha1.Store{ClaimName: "store"},
		}}
	if err := f.c.Create(context.Background(), obj); err != nil {
		f.t.Fatal(err)
	}
}

func (f *fixture) repoURL() string {
	if f.url != "" {
		return f.url
	}
	return f.lab.URL()
}

// update changes the object, retrying on conflicts with the controller's
// status writes.
func (f *fixture) update(change func(*v1alpha1.ExperimentRepository)) {
	f.t.Helper()
	for i := 0; ; i++ {
		obj := &v1alpha1.ExperimentRepository{}
		if err := f.c.Get(context.Background(), f.key, obj); err != nil {
			f.t.Fatal(err)
		}
		change(obj)
		err := f.c.Update(context.Background(), obj)
		if err == nil {
			return
		}
		if i > 20 {
			f.t.Fatal(err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (f *fixture) controller() *controllerProcess {
	return startController(f.t, apiServer(f.t), f.state, f.execs)
}

// verifyClone checks every results folder of a fresh clone of main with
// the library check `expsync verify` runs, and returns their count.
func (f *fixture) verifyClone(experiment string) int {
	f.t.Helper()
	dir := f.lab.Clone()
	root, err := tree.NewDir(dir)
	if err != nil {
		f.t.Fatal(err)
	}
	defer root.Close()
	entries, err := os.ReadDir(filepath.Join(dir, "results", experiment))
	if err != nil {
		f.t.Fatal(err)
	}
	n := 0
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		folder := filepath.ToSlash(filepath.Join("results", experiment, e.Name()))
		if _, err := attest.VerifyTreeFolder(root, folder, attest.FolderOptions{Keys: attest.Verifiers{f.pub}, RunID: e.Name(), Experiment: experiment}); err != nil {
			f.t.Errorf("%s does not verify: %v", folder, err)
		}
		n++
	}
	return n
}

// TestControllerReconcilesARepository: a push becomes runs; the valid
// experiment runs next to an invalid one, whose file:line:col reaches the
// status; the results verify on a fresh clone; Ready, Stalled and
// observedGeneration read the way kstatus and `kubectl wait` read them; a
// restarted controller reruns nothing; suspend stops new runs and resume
// runs them.
func TestControllerReconcilesARepository(t *testing.T) {
	f := newFixture(t, "reconciles")
	f.lab.Commit("experiments", merge(squareSweep("1, 2, 3"), invalidExperiment))
	f.create(time.Hour) // only the object's changes and requestedAt poll in this test
	p := f.controller()

	obj := waitFor(t, f.c, f.key, "the valid runs' results and the invalid experiment stalled", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 3 && conditions.IsStalled(o) &&
			o.Status.Refs[0].Runs.InvalidExperiments == 1 && o.Status.ObservedGeneration == o.Generation
	})
	ref := obj.Status.Refs[0]
	if want := "main@sha1:"; !strings.HasPrefix(ref.ObservedCommit, want) || ref.Runs.Planned != 3 || ref.Runs.InvalidExperiments != 1 {
		t.Errorf("ref status %+v", ref)
	}
	if msg := conditions.GetMessage(obj, v1alpha1.InvalidExperimentsCondition); !strings.Contains(msg, "experiments/broken.yaml:7:") {
		t.Errorf("InvalidExperiments does not name the file, line and column: %q", msg)
	}
	if conditions.IsReady(obj) || obj.Status.ObservedGeneration != obj.Generation || kstatusOf(obj) != kstatus.FailedStatus {
		t.Errorf("stalled object: %s, observedGeneration %d of %d, kstatus %s", condString(obj, meta.ReadyCondition),
			obj.Status.ObservedGeneration, obj.Generation, kstatusOf(obj))
	}
	if n := f.verifyClone("square"); n != 3 {
		t.Errorf("%d verified results folders, want 3", n)
	}

	// Fix the file: the object becomes Ready (kstatus) and runs nothing
	// again.
	p.stop()
	f.lab.Pull()
	f.lab.Commit("fix", map[string]string{"experiments/broken.yaml": strings.Replace(invalidExperiment["experiments/broken.yaml"], "comand", "command", 1)})
	p = f.controller()
	obj = waitFor(t, f.c, f.key, "Ready after the fix", 2*time.Minute, kstatusReady)
	if got := obj.Status.Refs[0].Runs; got.Succeeded != 4 || got.Planned != 4 {
		t.Errorf("after the fix: runs %+v, want 4 planned and succeeded (3 done, 1 new); status %+v", got, obj.Status)
	}
	if n := f.verifyClone("square"); n != 3 {
		t.Errorf("%d square folders after a restart, want 3: a restart reran or duplicated runs", n)
	}

	// Suspend: a new commit runs nothing; resume runs it.
	f.update(func(o *v1alpha1.ExperimentRepository) { o.Spec.Suspend = true })
	time.Sleep(time.Second)
	f.lab.Pull()
	f.lab.Commit("more", squareSweep("1, 2, 3, 4"))
	f.update(func(o *v1alpha1.ExperimentRepository) {
		o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
	})
	time.Sleep(3 * time.Second)
	if n := f.verifyClone("square"); n != 3 {
		t.Errorf("a suspended repository committed results: %d folders", n)
	}
	f.update(func(o *v1alpha1.ExperimentRepository) { o.Spec.Suspend = false })
	waitFor(t, f.c, f.key, "Ready after resume with the new run", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 5
	})
	if n := f.verifyClone("square"); n != 4 {
		t.Errorf("%d square folders after resume, want 4", n)
	}
	p.stop()

	// Events on changes only, with Flux's metadata: one ResultsCommitted
	// per results commit, the invalid experiment's warning once.
	var events corev1.EventList
	if err := f.c.List(context.Background(), &events, client.InNamespace(f.key.Namespace)); err != nil {
		t.Fatal(err)
	}
	byReason := map[string]int{}
	for _, e := range events.Items {
		if e.InvolvedObject.Name != f.key.Name {
			continue
		}
		byReason[e.Reason] += int(max(e.Count, 1))
		if e.Reason == "ResultsCommitted" {
			if e.Annotations["expsync.dev/commit_status"] != "update" || !strings.HasPrefix(e.Annotations["expsync.dev/revision"], "main@sha1:") {
				t.Errorf("ResultsCommitted event without Flux's metadata: %v", e.Annotations)
			}
		}
		if strings.Contains(e.Message, gitPassword) {
			t.Errorf("event %s shows the Git password", e.Reason)
		}
	}
	if byReason["ResultsCommitted"] != 3 || byReason[v1alpha1.InvalidExperimentsReason] != 1 {
		t.Errorf("events by reason %v: want 3 ResultsCommitted (three results commits) and 1 InvalidExperiments", byReason)
	}

	// Metrics: Flux's reconcile duration and expsync's own series.
	families, err := ctrlmetrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, fam := range families {
		seen[fam.GetName()] = true
	}
	for _, name := range []string{"gotk_reconcile_duration_seconds", "expsync_runs", "expsync_runs_finished_total", "expsync_run_duration_seconds"} {
		if !seen[name] {
			t.Errorf("metric %s not exposed", name)
		}
	}
}

// requestCounter counts the API requests of a client by verb.
type requestCounter struct {
	mu     sync.Mutex
	byVerb map[string]int
	// byPath counts GETs by URL path (nil: not counted), writes the
	// other verbs by path.
	byPath map[string]int
	writes map[string]int
	rt     http.RoundTripper
}

func (c *requestCounter) RoundTrip(req *http.Request) (*http.Response, error) {
	verb := req.Method
	if req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true" {
		verb = "WATCH"
	}
	c.mu.Lock()
	c.byVerb[verb]++
	if c.byPath != nil && verb == http.MethodGet {
		c.byPath[req.URL.Path]++
	}
	if c.byPath != nil && verb != http.MethodGet && verb != "WATCH" {
		if c.writes == nil {
			c.writes = map[string]int{}
		}
		c.writes[req.URL.Path]++
	}
	c.mu.Unlock()
	return c.rt.RoundTrip(req)
}

func (c *requestCounter) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.byVerb {
		out[k] = v
	}
	return out
}

// TestUnchangedRepositoryCostsOneListing: once a repository's commit is
// reconciled, each interval costs one listing of its refs and no API
// write (no status patch, no event): the controller's requests are
// counted at its HTTP transport, the listings by the Git source.
func TestUnchangedRepositoryCostsOneListing(t *testing.T) {
	f := newFixture(t, "unchanged")
	f.lab.Commit("experiments", squareSweep("1, 2"))
	const interval = 10 * time.Second // the schema's minimum
	f.create(interval)
	cfg := apiServer(t)
	counter := &requestCounter{byVerb: map[string]int{}, byPath: map[string]int{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter })
	p := startController(t, cfg, f.state, f.execs)
	defer p.stop()
	// The first pass ends when the controller has seen its own results
	// commit (one more listing and a reconcile that runs nothing).
	waitFor(t, f.c, f.key, "Ready at the results commit", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].ObservedCommit == revision("refs/heads/main", f.lab.Head())
	})
	time.Sleep(2 * time.Second) // the last wake-ups of the first pass
	r := p.reconciler
	r.mu.Lock()
	st := r.repos[f.key]
	r.mu.Unlock()
	// Requests about this test's object (other tests' objects stay in
	// the shared API server and this controller reconciles them too).
	own := func(m map[string]int) int {
		counter.mu.Lock()
		defer counter.mu.Unlock()
		n := 0
		for path, k := range m {
			if strings.Contains(path, "/namespaces/"+f.key.Namespace+"/") {
				n += k
			}
		}
		return n
	}
	before, lists, readsBefore, writesBefore := counter.snapshot(), st.src.Stats().Lists, own(counter.byPath), own(counter.writes)
	const periods = 3
	time.Sleep(periods*interval + interval/2)
	after, listsAfter, reads, writes := counter.snapshot(), st.src.Stats().Lists, own(counter.byPath)-readsBefore, own(counter.writes)-writesBefore
	got := listsAfter - lists
	t.Logf("%d intervals of an unchanged repository: %d ref listings, %d API writes, %d API reads about it (%d GETs by the controller in all)",
		periods, got, writes, reads, after[http.MethodGet]-before[http.MethodGet])
	if got < periods || got > periods+1 {
		t.Errorf("%d ref listings in %d intervals, want one per interval", got, periods)
	}
	if writes != 0 {
		t.Errorf("%d API writes for an unchanged repository (%v → %v), want 0", writes, before, after)
	}
	// The Git credentials are held for Settings.SecretsTTL (5 minutes):
	// no Secret GET per poll (10,000 objects polled every minute would
	// exceed --kube-api-qps 50).
	if all := after[http.MethodGet] - before[http.MethodGet]; all > 10*periods {
		counter.mu.Lock()
		t.Logf("GETs by path (objects other tests left): %v", counter.byPath)
		counter.mu.Unlock()
	}
	if reads != 0 {
		t.Errorf("%d API reads in %d intervals of an unchanged repository, want 0 (Secrets read again only after --secrets-ttl)", reads, periods)
	}

	// A rotated credential is read at once when the operator asks
	// (reconcile.fluxcd.io/requestedAt), not after the TTL: a wrong
	// password makes the poll fail, the right one again heals it.
	setPassword := func(pw string) {
		t.Helper()
		s := &corev1.Secret{}
		if err := f.c.Get(context.Background(), client.ObjectKey{Namespace: f.key.Namespace, Name: "git"}, s); err != nil {
			t.Fatal(err)
		}
		s.Data["password"] = []byte(pw)
		if err := f.c.Update(context.Background(), s); err != nil {
			t.Fatal(err)
		}
		f.update(func(o *v1alpha1.ExperimentRepository) {
			o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
		})
	}
	setPassword("rotated-elsewhere")
	waitFor(t, f.c, f.key, "FetchFailed with the rotated password", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.IsTrue(o, v1alpha1.FetchFailedCondition)
	})
	setPassword(gitPassword)
	waitFor(t, f.c, f.key, "Ready again with the right password", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && !conditions.Has(o, v1alpha1.FetchFailedCondition)
	})
}

// TestTwoControllersWithoutLeaderElection: two controllers that both
// reconcile the same object (leader election off, a misconfiguration)
// share the store's run locks and the branch's push leases: every run
// executes once and every result is committed exactly once, verifiable.
func TestTwoControllersWithoutLeaderElection(t *testing.T) {
	f := newFixture(t, "two-controllers")
	f.lab.Commit("experiments", squareSweep("1, 2, 3, 4, 5, 6"))
	f.create(time.Hour)
	cfg := apiServer(t)
	storeRoot := t.TempDir()
	a := startController(t, cfg, t.TempDir(), &hostExecutors{t: t, root: storeRoot, execRoot: t.TempDir(), ex: map[string]*hostExecutor{}})
	b := startController(t, cfg, t.TempDir(), &hostExecutors{t: t, root: storeRoot, execRoot: t.TempDir(), ex: map[string]*hostExecutor{}})
	defer a.stop()
	defer b.stop()
	waitFor(t, f.c, f.key, "Ready with 6 results", 3*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 6
	})
	time.Sleep(time.Second) // the other controller's last push, if any
	if n := f.verifyClone("square"); n != 6 {
		t.Errorf("%d results folders, want 6 (each exactly once)", n)
	}
}

// markedSweep is squareSweep whose runs append their x to marker: a rerun
// shows as a second line.
func markedSweep(xs, marker string) map[string]string {
	files := squareSweep(xs)
	files["code/square/square.sh"] = `set -e
echo "$1" >> ` + marker + `
mkdir -p out
echo $(($1 * $1)) > out/result.txt
printf '{"square": %d}\n' $(($1 * $1)) > out/metrics.json
`
	return files
}

func lines(t *testing.T, file string) int {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	return strings.Count(string(data), "\n")
}

// TestForcePushRecommitsWithoutRerun: a force-push that drops the results
// commit costs a re-commit from the run cache, never a rerun.
func TestForcePushRecommitsWithoutRerun(t *testing.T) {
	f := newFixture(t, "force-push")
	marker := filepath.Join(t.TempDir(), "marker")
	source := f.lab.Commit("experiments", markedSweep("1, 2, 3", marker))
	f.create(10 * time.Second)
	p := f.controller()
	defer p.stop()
	waitFor(t, f.c, f.key, "Ready", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 3
	})
	if n := lines(t, marker); n != 3 {
		t.Fatalf("%d executions, want 3", n)
	}
	// Rewrite main from the source commit, without the results commit.
	f.lab.Git(f.lab.Peer, "reset", "-q", "--hard", source)
	if err := os.WriteFile(filepath.Join(f.lab.Peer, "NOTES.md"), []byte("rewritten\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	f.lab.Git(f.lab.Peer, "add", "-A")
	f.lab.Git(f.lab.Peer, "commit", "-q", "-m", "rewritten history")
	rewritten := strings.TrimSpace(f.lab.Git(f.lab.Peer, "rev-parse", "HEAD"))
	f.lab.Git(f.lab.Peer, "push", "-q", "--force", "origin", "main")
	waitFor(t, f.c, f.key, "Ready on the rewritten history", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 3 &&
			o.Status.Refs[0].LastResultsCommit != "" && f.lab.Head() != rewritten
	})
	if n := f.verifyClone("square"); n != 3 {
		t.Errorf("%d results folders on the rewritten main, want 3", n)
	}
	if n := lines(t, marker); n != 3 {
		t.Errorf("%d executions after the force-push, want 3: results must come from the run cache", n)
	}
}

// TestGitServerDownThenBack: while the server drops every connection the
// object says FetchFailed (Ready=False, retried, never Stalled, no
// credential in the message); once it is back the new commit runs.
func TestGitServerDownThenBack(t *testing.T) {
	f := newFixture(t, "git-down")
	// The object reads the repository through a proxy that, while down,
	// drops every connection, as a server that went away does.
	var down atomic.Bool
	target, err := url.Parse(f.lab.Srv.HTTPAddress())
	if err != nil {
		t.Fatal(err)
	}
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if down.Load() {
			if hj, ok := w.(http.Hijacker); ok {
				if conn, _, err := hj.Hijack(); err == nil {
					conn.Close()
					return
				}
			}
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		httputil.NewSingleHostReverseProxy(target).ServeHTTP(w, r)
	}))
	defer proxy.Close()
	f.url = proxy.URL + "/lab.git"
	f.lab.Commit("experiments", squareSweep("1, 2"))
	f.create(10 * time.Second)
	p := f.controller()
	defer p.stop()
	waitFor(t, f.c, f.key, "Ready", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 2
	})
	f.lab.Pull()
	f.lab.Commit("one more", squareSweep("1, 2, 3"))
	down.Store(true)
	obj := waitFor(t, f.c, f.key, "FetchFailed", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.IsTrue(o, v1alpha1.FetchFailedCondition)
	})
	if conditions.IsReady(obj) || conditions.IsStalled(obj) || !conditions.IsReconciling(obj) {
		t.Errorf("server down: %s, %s, %s", condString(obj, meta.ReadyCondition), condString(obj, meta.StalledCondition), condString(obj, meta.ReconcilingCondition))
	}
	for _, c := range obj.Status.Conditions {
		if strings.Contains(c.Message, gitPassword) {
			t.Errorf("%s shows the Git password: %s", c.Type, c.Message)
		}
	}
	down.Store(false)
	waitFor(t, f.c, f.key, "Ready with the new run", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && !conditions.Has(o, v1alpha1.FetchFailedCondition) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 3
	})
}
