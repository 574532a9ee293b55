package controller

import (
	"context"
	"fmt"
	"net"
	"net/http"
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
	"github.com/go-logr/logr"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
)

// gatedSweep is squareSweep whose runs other than x=1 wait until gate
// exists: run 1's result is committed while the others are in flight
// (at most 2 runs: the host executor runs 2 at a time, and run 1 must not
// wait behind gated ones).
func gatedSweep(xs, gate string) map[string]string {
	files := squareSweep(xs)
	// Waiting runs must not time out on a loaded machine.
	files["experiments/square.yaml"] = strings.Replace(files["experiments/square.yaml"], "timeout: 1m", "timeout: 30m", 1)
	files["code/square/square.sh"] = `set -e
if [ "$1" != 1 ]; then while [ ! -e ` + gate + ` ]; do sleep 0.1; done; fi
mkdir -p out
echo $(($1 * $1)) > out/result.txt
printf '{"square": %d}\n' $(($1 * $1)) > out/metrics.json
`
	return files
}

// logLines keeps a controller's log; errors counts its error-level lines.
type logLines struct {
	mu     sync.Mutex
	lines  []string
	errors int
}

func (l *logLines) logger() *logr.Logger {
	lg := funcr.New(func(prefix, args string) {
		l.mu.Lock()
		defer l.mu.Unlock()
		l.lines = append(l.lines, prefix+" "+args)
		if strings.Contains(args, `"error"=`) {
			l.errors++
		}
	}, funcr.Options{Verbosity: 0})
	return &lg
}

func (l *logLines) errorCount() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.errors
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	lines := l.lines
	if len(lines) > 20 {
		lines = append([]string{fmt.Sprintf("(%d lines before)", len(lines)-20)}, lines[len(lines)-20:]...)
	}
	return strings.Join(lines, "\n")
}

func (f *fixture) requestReconcile() {
	f.t.Helper()
	f.update(func(o *v1alpha1.ExperimentRepository) {
		o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
	})
}

// TestStatusWhileAnEarlierCommitsRunsAreInFlight: a commit's first result
// is committed back while its other run still runs; the poll that sees
// expsync's own results commit must not make the status forget the runs
// in flight (seen on a real node: "0 of 0 runs done, 0 running; 0 runs
// planned" while 12 Jobs ran), and the results commit is shown with its
// branch (<branch>@sha1:<hex>) as soon as it is pushed.
//
// observedGeneration follows Flux's convention exactly (kustomize-
// controller's finalizeStatus, fluxcd/pkg/runtime/reconcile
// AddPatchOptions): written only when the object is Ready or Stalled, -1
// (the CRD's default, as in Flux's CRDs) before that; the conditions carry
// the generation they are about, and kstatus reads InProgress.
func TestStatusWhileAnEarlierCommitsRunsAreInFlight(t *testing.T) {
	f := newFixture(t, "in-flight")
	gate := filepath.Join(t.TempDir(), "gate")
	source := f.lab.Commit("experiments", gatedSweep("1, 2", gate))
	f.create(time.Hour) // polls on requestedAt only
	p := f.controller()
	defer p.stop()

	// Run 1 ends at once and its result is pushed as a results commit.
	obj := waitFor(t, f.c, f.key, "run 1's results commit while run 2 runs", 4*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return len(o.Status.Refs) == 1 && o.Status.Refs[0].LastResultsCommit != ""
	})
	results := f.lab.Head()
	if results == source {
		t.Fatalf("no results commit on main, status %+v", obj.Status.Refs)
	}
	if got, want := obj.Status.Refs[0].LastResultsCommit, "main@sha1:"+results; got != want {
		t.Errorf("lastResultsCommit %q, want %q", got, want)
	}

	// The controller lists main again and sees its own results commit.
	f.requestReconcile()
	waitFor(t, f.c, f.key, "the results commit observed while run 2 runs", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return len(o.Status.Refs) == 1 && o.Status.Refs[0].ObservedCommit == "main@sha1:"+results && o.Status.LastHandledReconcileAt != ""
	})
	time.Sleep(time.Second) // the status after the listing's reconcile
	obj = waitFor(t, f.c, f.key, "the object", time.Minute, func(*v1alpha1.ExperimentRepository) bool { return true })
	ref := obj.Status.Refs[0]
	if ref.Runs.Planned != 2 || ref.Runs.Succeeded != 1 || ref.Runs.Running != 1 {
		t.Errorf("runs %+v while run 2 of %s is in flight, want 2 planned, 1 succeeded, 1 running", ref.Runs, short(source))
	}
	rec := conditions.GetMessage(obj, meta.ReconcilingCondition)
	if !conditions.IsReconciling(obj) || !strings.Contains(rec, "main@sha1:"+source) || !strings.Contains(rec, "1 of 2 runs done, 1 running") {
		t.Errorf("Reconciling does not describe the runs in flight: %s", condString(obj, meta.ReconcilingCondition))
	}
	if !strings.Contains(ref.Message, "main@sha1:"+source) {
		t.Errorf("ref message %q does not name the commit whose runs are counted", ref.Message)
	}
	// Flux's convention while in flight.
	if obj.Status.ObservedGeneration != -1 || conditions.IsReady(obj) || kstatusOf(obj) != kstatus.InProgressStatus {
		t.Errorf("in flight: observedGeneration %d (want -1 until the first Ready), %s, kstatus %s",
			obj.Status.ObservedGeneration, condString(obj, meta.ReadyCondition), kstatusOf(obj))
	}
	for _, c := range obj.Status.Conditions {
		if c.ObservedGeneration != obj.Generation {
			t.Errorf("condition %s is about generation %d, the object's is %d", c.Type, c.ObservedGeneration, obj.Generation)
		}
	}

	if err := os.WriteFile(gate, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	f.requestReconcile()
	obj = waitFor(t, f.c, f.key, "Ready with 2 results", 4*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 2
	})
	if got := obj.Status.Refs[0].LastResultsCommit; !strings.HasPrefix(got, "main@sha1:") {
		t.Errorf("lastResultsCommit %q, want main@sha1:<hex>", got)
	}
	if n := f.verifyClone("square"); n != 2 {
		t.Errorf("%d verified results, want 2", n)
	}
}

// TestEmptyRepositoryIsANormalState: a new repository without commits is
// Ready (nothing to run, nothing failed: a health check does not wait for
// the first push), never Stalled or FetchFailed; polling it logs no error
// and sends no event; its first push is reconciled at the next poll.
func TestEmptyRepositoryIsANormalState(t *testing.T) {
	f := newFixture(t, "empty-repository")
	const interval = 10 * time.Second // the schema's minimum
	f.create(interval)
	logs := &logLines{}
	p := startControllerWith(t, apiServer(t), f.state, f.execs, controllerConfig{namespace: f.key.Namespace, logger: logs.logger()})
	defer p.stop()
	waitFor(t, f.c, f.key, "Ready: empty repository", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.GetReason(o, meta.ReadyCondition) == v1alpha1.EmptyRepositoryReason
	})
	time.Sleep(2*interval + interval/2) // two more polls of the empty repository
	obj := waitFor(t, f.c, f.key, "the object", time.Minute, func(*v1alpha1.ExperimentRepository) bool { return true })
	if !kstatusReady(obj) || conditions.IsStalled(obj) || conditions.Has(obj, v1alpha1.FetchFailedCondition) ||
		!strings.Contains(conditions.GetMessage(obj, meta.ReadyCondition), "no commits yet") {
		t.Errorf("empty repository: %s, %s, %s, kstatus %s", condString(obj, meta.ReadyCondition), condString(obj, meta.StalledCondition),
			condString(obj, v1alpha1.FetchFailedCondition), kstatusOf(obj))
	}
	if n := logs.errorCount(); n != 0 {
		t.Errorf("%d error lines while polling an empty repository:\n%s", n, logs)
	}
	var events corev1.EventList
	if err := f.c.List(context.Background(), &events, client.InNamespace(f.key.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		t.Errorf("event %s/%s %q for an empty repository, want none", e.Type, e.Reason, e.Message)
	}

	f.lab.Commit("first", squareSweep("1, 2"))
	waitFor(t, f.c, f.key, "Ready with the first push's runs", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return kstatusReady(o) && len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Succeeded == 2
	})
}

// TestFailingPollBacksOff: an object whose Git server is gone must not
// storm the API server (a full test run saw 8,823 GETs of one Git Secret
// in 35 s from objects whose servers had stopped): the listing is retried
// after 0.75 s, 1.5 s, 3 s... never later than the interval; the Secrets
// are not read again before --secrets-ttl; the failure is logged and
// announced once, not at every retry. Requests are counted at the
// controller's transport, i.e. every request the API server receives from
// it; listing attempts at the dead server's socket.
func TestFailingPollBacksOff(t *testing.T) {
	f := newFixture(t, "git-gone")
	// A server that is gone: every connection is accepted and closed.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	var attempts atomic.Int64
	go func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			attempts.Add(1)
			conn.Close()
		}
	}()
	f.url = "http://" + ln.Addr().String() + "/lab.git"
	const interval = 10 * time.Second
	f.create(interval)
	cfg := apiServer(t)
	counter := &requestCounter{byVerb: map[string]int{}, byPath: map[string]int{}}
	cfg.Wrap(func(rt http.RoundTripper) http.RoundTripper { counter.rt = rt; return counter })
	logs := &logLines{}
	p := startControllerWith(t, cfg, f.state, f.execs, controllerConfig{namespace: f.key.Namespace, logger: logs.logger()})
	defer p.stop()
	obj := waitFor(t, f.c, f.key, "FetchFailed", time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.IsTrue(o, v1alpha1.FetchFailedCondition)
	})
	if conditions.IsReady(obj) || conditions.IsStalled(obj) || !conditions.IsReconciling(obj) {
		t.Errorf("server gone: %s, %s, %s", condString(obj, meta.ReadyCondition), condString(obj, meta.StalledCondition), condString(obj, meta.ReconcilingCondition))
	}

	const window = 25 * time.Second
	before, tries, errLines := counter.snapshot(), attempts.Load(), logs.errorCount()
	time.Sleep(window)
	after, triesAfter, errLinesAfter := counter.snapshot(), attempts.Load(), logs.errorCount()
	requests := map[string]int{}
	total := 0
	for verb, n := range after {
		if d := n - before[verb]; d > 0 && verb != "WATCH" {
			requests[verb] = d
			total += d
		}
	}
	counter.mu.Lock()
	secretGets := 0
	for path, n := range counter.byPath {
		if strings.Contains(path, "/secrets/") {
			secretGets += n
		}
	}
	counter.mu.Unlock()
	listings := triesAfter - tries
	t.Logf("server gone, %s window: %d listing attempts, API requests %v, Secret GETs since start %d, error log lines %d",
		window, listings, requests, secretGets, errLinesAfter-errLines)
	// Backoff from ~3 s at the window's start: 6 s, then the interval:
	// about 3 attempts; a storm makes hundreds of requests.
	if listings < 2 || listings > 6 {
		t.Errorf("%d listing attempts in %s, want 2-6 (exponential backoff capped at the %s interval)", listings, window, interval)
	}
	// A status patch when the error's text changed (EOF, connection
	// reset), never more than one listing attempt's worth.
	if total > 2*int(listings)+1 {
		t.Errorf("%d API requests in %s for one object whose server is gone (%v), want at most a status patch per listing attempt", total, window, requests)
	}
	if secretGets > 2 {
		t.Errorf("%d Secret GETs, want the first read only (git + signing-key) before --secrets-ttl", secretGets)
	}
	if n := errLinesAfter - errLines; n != 0 {
		t.Errorf("%d error log lines in the window: the failure is logged once, on change:\n%s", n, logs)
	}
	if errLines == 0 || errLines > 2 {
		t.Errorf("%d error log lines before the window, want the failure logged once", errLines)
	}
	var events corev1.EventList
	if err := f.c.List(context.Background(), &events, client.InNamespace(f.key.Namespace)); err != nil {
		t.Fatal(err)
	}
	warnings := 0
	for _, e := range events.Items {
		warnings += int(max(e.Count, 1))
		if !strings.Contains(e.Message, "list refs") {
			t.Errorf("unexpected event %s %q", e.Reason, e.Message)
		}
	}
	if warnings != 1 {
		t.Errorf("%d events, want one (Ready turned False)", warnings)
	}
}
