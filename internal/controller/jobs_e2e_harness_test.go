package controller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
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

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/expsync/expsync/internal/kubetest"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
)

// The stand-in kubelet runs each container by starting the test binary
// again in a sandbox: that binary must become the container before any test
// runs (an init, so the package's TestMain stays as it is).
func init() { standin.RunSandbox() }

// runnerBinary builds the static expsync the runner image holds, once per
// test binary.
var runnerBinary = kubetest.StaticExpsync

// controllerManager is the kube-controller-manager (Job controller,
// garbage collector, ...) of the tests that run Jobs: started by the first
// one and stopped when the last one using it ends, since the package's
// other tests assume none (their Jobs never get pods).
var controllerManager struct {
	sync.Mutex
	kcm   *standin.ControllerManager
	users int
}

func useControllerManager(t testing.TB) {
	t.Helper()
	controllerManager.Lock()
	defer controllerManager.Unlock()
	if controllerManager.kcm == nil {
		kcm, err := standin.StartControllerManager(cluster.Env())
		if err != nil {
			t.Fatal(err)
		}
		controllerManager.kcm = kcm
	}
	controllerManager.users++
	t.Cleanup(func() {
		controllerManager.Lock()
		defer controllerManager.Unlock()
		if controllerManager.users--; controllerManager.users == 0 {
			_ = controllerManager.kcm.Stop()
			controllerManager.kcm = nil
		}
	})
}

// node is what makes Jobs run next to the package's API server: the real
// kube-controller-manager and, when play is set, the stand-in kubelet
// playing the pods of one namespace, whose store claim is the folder the
// controller sees at <store-root>/<namespace>/<claim>. Without a kubelet
// the pods stay Pending, as on a cluster without room for them.
type node struct {
	t         testing.TB
	clientset kubernetes.Interface
	ns        string
	storeRoot string
	kubelet   *standin.Kubelet

	mu sync.Mutex
	// jobsAdded counts the Jobs ever created per run ID (by UID: a
	// relisting informer counts nothing twice).
	jobsAdded map[string]map[string]bool
	// started counts the run containers started per run ID.
	started map[string]int
}

// newNode makes the namespace (its store claim, its signing and Git
// Secrets come from newFixture) played by a kubelet with hooks plus the
// node's own counting, or by none when play is false.
func newNode(t testing.TB, ns string, play bool, hooks standin.Hooks) *node {
	t.Helper()
	if os.Geteuid() != 0 && play {
		const msg = "the stand-in kubelet needs root to mount each pod's volumes in its sandbox (CI runs as root): run the test as root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := apiServer(t)
	useControllerManager(t)
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	n := &node{t: t, clientset: cs, ns: ns, storeRoot: t.TempDir(),
		jobsAdded: map[string]map[string]bool{}, started: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	claimDir := filepath.Join(n.storeRoot, ns, "store")
	if err := os.MkdirAll(claimDir, 0o755); err != nil {
		t.Fatal(err)
	}
	if play {
		bin, err := runnerBinary()
		if err != nil {
			t.Fatal(err)
		}
		before := hooks.BeforeContainer
		hooks.BeforeContainer = func(ctx context.Context, pod *corev1.Pod, container string) {
			if container == render.MainContainerName {
				n.mu.Lock()
				n.started[runIDOf(pod)]++
				n.mu.Unlock()
			}
			if before != nil {
				before(ctx, pod, container)
			}
		}
		n.kubelet = standin.NewKubelet(standin.KubeletOptions{Client: cs, Runner: bin, RunnerImage: testRunnerImage,
			Dir: t.TempDir(), Namespaces: []string{ns}, Hooks: hooks,
			Claims: func(namespace, claim string) (string, bool) { return claimDir, namespace == ns && claim == "store" }})
		if err := n.kubelet.Start(ctx); err != nil {
			t.Fatal(err)
		}
	}
	// The test's own record of every Job created, to prove none twice.
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	inf := factory.Batch().V1().Jobs().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		job, ok := obj.(*batchv1.Job)
		if !ok {
			return
		}
		id, _ := render.RunIDFromLabelValue(job.Labels[render.LabelRunID])
		n.mu.Lock()
		if n.jobsAdded[id] == nil {
			n.jobsAdded[id] = map[string]bool{}
		}
		n.jobsAdded[id][string(job.UID)] = true
		n.mu.Unlock()
	}}); err != nil {
		t.Fatal(err)
	}
	factory.Start(ctx.Done())
	factory.WaitForCacheSync(ctx.Done())
	return n
}

// counts returns, per run ID, the Jobs created and run containers started.
func (n *node) counts() (jobs map[string]int, started map[string]int) {
	n.mu.Lock()
	defer n.mu.Unlock()
	jobs, started = map[string]int{}, map[string]int{}
	for id, uids := range n.jobsAdded {
		jobs[id] = len(uids)
	}
	for id, c := range n.started {
		started[id] = c
	}
	return jobs, started
}

func (n *node) jobs() []batchv1.Job {
	n.t.Helper()
	list, err := n.clientset.BatchV1().Jobs(n.ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		n.t.Fatal(err)
	}
	return list.Items
}

func runIDOf(pod *corev1.Pod) string {
	id, _ := render.RunIDFromLabelValue(pod.Labels[render.LabelRunID])
	return id
}

// gate holds the next run containers it is told to, until opened (or
// their pod is deleted).
type gate struct {
	mu      sync.Mutex
	pending int // run containers still to hold
	release chan struct{}
	reached chan *corev1.Pod
}

func newGate() *gate {
	return &gate{release: make(chan struct{}), reached: make(chan *corev1.Pod, 64)}
}

// close makes the next k run containers wait.
func (g *gate) close(k int) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.pending += k
}

// open releases the containers waiting.
func (g *gate) open() {
	g.mu.Lock()
	defer g.mu.Unlock()
	close(g.release)
	g.release = make(chan struct{})
}

func (g *gate) before(ctx context.Context, pod *corev1.Pod, container string) {
	if container != render.MainContainerName {
		return
	}
	g.mu.Lock()
	hold := g.pending > 0
	if hold {
		g.pending--
	}
	release := g.release
	g.mu.Unlock()
	if !hold {
		return
	}
	g.reached <- pod
	select {
	case <-release:
	case <-ctx.Done():
	}
}

// await returns the next n pods that reached the gate.
func (g *gate) await(t testing.TB, n int) []*corev1.Pod {
	t.Helper()
	var pods []*corev1.Pod
	timeout := time.After(3 * time.Minute)
	for len(pods) < n {
		select {
		case p := <-g.reached:
			pods = append(pods, p)
		case <-timeout:
			t.Fatalf("%d of %d pods reached their run container within 3 minutes", len(pods), n)
		}
	}
	return pods
}

// putObject stores data in a run's prefix as the pod's store would, and
// returns its digest.
func putObject(t testing.TB, prefix string, data []byte) string {
	sum := sha256.Sum256(data)
	sha := hex.EncodeToString(sum[:])
	path := filepath.Join(prefix, "sha256", sha[:2], sha)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Error(err)
	}
	if err := os.WriteFile(path, data, 0o444); err != nil && !os.IsPermission(err) {
		t.Error(err)
	}
	return sha
}

// committedRuns reads every run.json of experiment in a fresh clone.
func (f *fixture) committedRuns(experiment string) map[string]results.Record {
	f.t.Helper()
	dir := f.lab.Clone()
	out := map[string]results.Record{}
	entries, err := os.ReadDir(filepath.Join(dir, "results", experiment))
	if os.IsNotExist(err) {
		return out
	}
	if err != nil {
		f.t.Fatal(err)
	}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(dir, "results", experiment, e.Name(), "run.json"))
		if err != nil {
			f.t.Fatal(err)
		}
		var rec results.Record
		if err := json.Unmarshal(data, &rec); err != nil {
			f.t.Fatal(err)
		}
		out[e.Name()] = rec
	}
	return out
}

// runJSONAdditions counts, over main's whole history, the commits that
// added each run.json: a result committed twice shows as 2.
func (f *fixture) runJSONAdditions() map[string]int {
	f.t.Helper()
	f.lab.Pull()
	out := map[string]int{}
	for _, line := range strings.Split(f.lab.Git(f.lab.Peer, "log", "--format=", "--diff-filter=A", "--name-only", "main"), "\n") {
		if strings.HasSuffix(line, "/run.json") {
			out[line]++
		}
	}
	return out
}

// switchableProxy serves the Lab's repository through a proxy that, while
// down is set, drops every connection, as a server that went away does.
func switchableProxy(t testing.TB, f *fixture) (repoURL string, down *atomic.Bool) {
	t.Helper()
	down = &atomic.Bool{}
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
	t.Cleanup(proxy.Close)
	return proxy.URL + "/lab.git", down
}
