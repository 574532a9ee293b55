package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/kubetest"
	"github.com/expsync/expsync/store"
)

// The package's control plane (envtest), with the ExperimentRepository
// CRD, started by the first test needing it.
var cluster = kubetest.New(filepath.Join("..", "..", "config", "crd", "bases"))

func TestMain(m *testing.M) {
	ctrl.SetLogger(logr.Discard())
	if interval := os.Getenv(fleetFloorEnv); interval != "" {
		os.Exit(runFleetFloor(interval)) // BenchmarkControllerFleet's floor
	}
	os.Exit(cluster.Run(m))
}

func apiServer(t testing.TB) *rest.Config { return cluster.Config(t) }

// hostExecutors run each repository's runs as host processes through
// executor/local, on one store per repository: the controller's logic
// (status, triggers, suspend, invalid experiments, Git failures) is tested
// with the real engine, API server and Git server, and the Job executor
// has its own tests (executor/kube, with the stand-in kubelet).
type hostExecutors struct {
	t    testing.TB
	root string
	// execRoot holds the executors' journals (default root): two
	// controllers sharing a store each have their own.
	execRoot string
	mu       sync.Mutex
	ex       map[string]*hostExecutor
}

type hostExecutor struct {
	*local.Executor
	st     *store.Local
	pruned []map[string]bool
	mu     sync.Mutex
}

func (h *hostExecutor) Store() store.Store { return h.st }
func (h *hostExecutor) StoreURL() string   { return "file://" + h.st.Root() }
func (h *hostExecutor) QuotaRefusal() string {
	return ""
}
func (h *hostExecutor) DeleteRefusal() string { return "" }
func (h *hostExecutor) Prune(_ context.Context, keep map[string]bool) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.pruned = append(h.pruned, keep)
	return nil
}

func (h *hostExecutors) factory(obj *v1alpha1.ExperimentRepository) (RepositoryExecutor, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	key := obj.Namespace + "/" + obj.Name
	if ex := h.ex[key]; ex != nil {
		return ex, nil
	}
	dir := filepath.Join(h.root, obj.Namespace, obj.Spec.Store.ClaimName)
	st, err := store.OpenLocal(filepath.Join(dir, "store"))
	if err != nil {
		return nil, err
	}
	execDir := filepath.Join(dir, "executor")
	if h.execRoot != "" {
		execDir = filepath.Join(h.execRoot, obj.Namespace, obj.Spec.Store.ClaimName)
	}
	lx, err := local.New(local.Options{Store: st, StateDir: execDir, MaxConcurrent: 2})
	if err != nil {
		return nil, err
	}
	h.t.Cleanup(func() { _ = lx.Shutdown(context.Background()) })
	ex := &hostExecutor{Executor: lx, st: st}
	h.ex[key] = ex
	return ex, nil
}

// controllerProcess is one `expsync controller` in the test process: a
// manager with the ExperimentRepository controller; stop ends it as a
// killed process would end (its ref workers stop, in-flight runs are left
// to the next one).
type controllerProcess struct {
	reconciler *Reconciler
	cancel     context.CancelFunc
	done       chan error
}

func startController(t testing.TB, cfg *rest.Config, stateDir string, execs *hostExecutors) *controllerProcess {
	t.Helper()
	return startControllerWith(t, cfg, stateDir, execs, controllerConfig{})
}

// controllerConfig narrows a test's controller: only the objects of
// namespace (other tests' objects stay in the shared API server), its log
// to logger.
type controllerConfig struct {
	namespace string
	logger    *logr.Logger
}

func startControllerWith(t testing.TB, cfg *rest.Config, stateDir string, execs *hostExecutors, cc controllerConfig) *controllerProcess {
	t.Helper()
	o := &Options{Concurrent: 2, restartable: true, Settings: Settings{StateDir: stateDir, BuilderID: "https://expsync.dev/builder/test",
		BatchInterval: 200 * time.Millisecond, ProgressInterval: 300 * time.Millisecond}}
	mo := ctrl.Options{Scheme: NewScheme(), Metrics: metricsserver.Options{BindAddress: "0"},
		Client: client.Options{Cache: &client.CacheOptions{DisableFor: []client.Object{&corev1.Secret{}}}}}
	if cc.namespace != "" {
		mo.Cache.DefaultNamespaces = map[string]ctrlcache.Config{cc.namespace: {}}
	}
	base := context.Background()
	if cc.logger != nil {
		mo.Logger = *cc.logger
		// The repositories' workers and review hooks log through the
		// setup context's logger.
		base = ctrl.LoggerInto(base, *cc.logger)
	}
	mgr, err := ctrl.NewManager(cfg, mo)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(base)
	r, err := Setup(ctx, mgr, o, ExecutorSetup{New: func(context.Context, ctrl.Manager, *Options) (ExecutorFactory, error) {
		return execs.factory, nil
	}})
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	p := &controllerProcess{reconciler: r, cancel: cancel, done: make(chan error, 1)}
	go func() { p.done <- mgr.Start(ctx) }()
	t.Cleanup(p.stop)
	return p
}

func (p *controllerProcess) stop() {
	if p.cancel == nil {
		return
	}
	p.cancel()
	<-p.done
	p.cancel = nil
}

// waitFor polls the object until cond holds.
func waitFor(t testing.TB, c client.Client, key client.ObjectKey, what string, timeout time.Duration, cond func(*v1alpha1.ExperimentRepository) bool) *v1alpha1.ExperimentRepository {
	t.Helper()
	deadline := time.Now().Add(timeout)
	obj := &v1alpha1.ExperimentRepository{}
	for {
		if err := c.Get(context.Background(), key, obj); err == nil && cond(obj) {
			return obj
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; status: %+v", timeout, what, obj.Status)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// kstatusReady is what `kubectl wait --for=condition=Ready` and Flux's
// health checks accept: Ready=True about the current generation, and
// kstatus (the library Flux's health checks run) computing Current.
func kstatusReady(obj *v1alpha1.ExperimentRepository) bool {
	return conditions.IsReady(obj) && obj.Status.ObservedGeneration == obj.Generation && kstatusOf(obj) == kstatus.CurrentStatus
}

// kstatusOf computes the object's kstatus as Flux's health checks do.
func kstatusOf(obj *v1alpha1.ExperimentRepository) kstatus.Status {
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return kstatus.UnknownStatus
	}
	res, err := kstatus.Compute(&unstructured.Unstructured{Object: m})
	if err != nil {
		return kstatus.UnknownStatus
	}
	return res.Status
}

func newNamespace(t testing.TB, c client.Client, name string) {
	t.Helper()
	if err := c.Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}); err != nil {
		t.Fatal(err)
	}
}

// signingSecret makes a cosign-format key pair and its Secret.
func signingSecret(t testing.TB, c client.Client, ns string) *attest.Key {
	t.Helper()
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "signing-key"},
		Data: map[string][]byte{"cosign.key": pair.Private, "cosign.password": []byte("pw"), "cosign.pub": pair.Public}}
	if err := c.Create(context.Background(), s); err != nil {
		t.Fatal(err)
	}
	key, err := attest.NewKey("test", priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func condString(obj *v1alpha1.ExperimentRepository, typ string) string {
	c := conditions.Get(obj, typ)
	if c == nil {
		return typ + "=<none>"
	}
	return fmt.Sprintf("%s=%s/%s: %s", typ, c.Status, c.Reason, c.Message)
}

var _ = meta.ReadyCondition
