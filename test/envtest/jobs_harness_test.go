package envtest_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/executor/kube"
	"github.com/expsync/expsync/internal/kubetest"
	"github.com/expsync/expsync/internal/standin"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// busybox is the image the test experiments pin; the stand-in kubelet runs
// the host's programs for it and reports this digest unless told otherwise.
const busybox = "docker.io/library/busybox@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662"

// expsyncBinary builds the static expsync the runner image holds, once.
var expsyncBinary = kubetest.StaticExpsync

// jobsHarness is one namespace with a store claim, a stand-in kubelet and
// what a test needs to start "controller processes" (an informer cache, a
// kube.Cluster and an Executor) against it.
type jobsHarness struct {
	t         testing.TB
	ctx       context.Context
	cfg       *rest.Config
	clientset kubernetes.Interface
	ns        string
	owner     metav1.OwnerReference
	storeDir  string
	storage   *kube.VolumeStorage
	kubelet   *standin.Kubelet
	repo      string
	// qps and burst limit the controller processes' clients (default
	// Flux's 50 and 300); wrapClient, when set, wraps their writing client.
	qps        float32
	burst      int
	wrapClient func(client.Client) client.Client
}

// newJobsHarness makes the namespace (Pod Security "restricted" enforced),
// the object owning its Jobs, the store and the kubelet, with hooks.
func newJobsHarness(t testing.TB, name string, hooks standin.Hooks) *jobsHarness {
	t.Helper()
	if os.Geteuid() != 0 {
		// The stand-in kubelet builds each container's file system with
		// mounts in new mount and PID namespaces.
		const msg = "the stand-in kubelet needs root to mount each pod's volumes in its sandbox (CI runs as root): run the test as root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	cfg := controllerManager(t)
	bin, err := expsyncBinary()
	if err != nil {
		t.Fatal(err)
	}
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	h := &jobsHarness{t: t, ctx: ctx, cfg: cfg, clientset: clientset, ns: name, storeDir: t.TempDir(),
		repo: "https://git.example/lab/" + name + ".git"}
	createRestrictedNamespace(t, ctx, clientset, name)
	// The owner stands in for the ExperimentRepository: any object of the
	// namespace whose deletion the garbage collector follows.
	owner, err := clientset.CoreV1().ConfigMaps(name).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "repository"}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	h.owner = metav1.OwnerReference{APIVersion: "v1", Kind: "ConfigMap", Name: owner.Name, UID: owner.UID, Controller: ptr.To(true)}
	if _, err := clientset.CoreV1().ServiceAccounts(name).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "runs"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if h.storage, err = kube.NewVolumeStorage("store", h.storeDir); err != nil {
		t.Fatal(err)
	}
	h.kubelet = standin.NewKubelet(standin.KubeletOptions{
		Client: clientset, Runner: bin, RunnerImage: runnerImage, Dir: t.TempDir(), Namespaces: []string{name},
		Claims: func(ns, claim string) (string, bool) { return h.storeDir, ns == name && claim == "store" },
		Hooks:  hooks,
	})
	if err := h.kubelet.Start(ctx); err != nil {
		t.Fatal(err)
	}
	return h
}

// controllerProcess is what one expsync controller process holds: its
// informer cache, the Cluster and the repository's Executor, all through
// one counted rest.Config.
type controllerProcess struct {
	cancel   context.CancelFunc
	requests *kubetest.RequestCounter
	cluster  *kube.Cluster
	executor *kube.Executor
	client   client.Client
}

// startController starts a controller process; change adjusts the
// repository's settings.
func (h *jobsHarness) startController(change func(*kube.Repository), opts ...func(*kube.Options)) *controllerProcess {
	h.t.Helper()
	p := &controllerProcess{requests: &kubetest.RequestCounter{}}
	cfg := rest.CopyConfig(h.cfg)
	cfg.QPS, cfg.Burst = 50, 300
	if h.qps > 0 {
		cfg.QPS, cfg.Burst = h.qps, h.burst
	}
	cfg.Wrap(p.requests.Wrap)
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	byObject := kube.CacheOptions()
	c, err := cache.New(cfg, cache.Options{Scheme: scheme, ByObject: byObject,
		DefaultNamespaces: map[string]cache.Config{h.ns: {}}})
	if err != nil {
		h.t.Fatal(err)
	}
	cl, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		h.t.Fatal(err)
	}
	if h.wrapClient != nil {
		cl = h.wrapClient(cl)
	}
	p.client = cl
	ctx, cancel := context.WithCancel(h.ctx)
	p.cancel = cancel
	o := kube.Options{Client: cl, Cache: c, Resync: 2 * time.Second}
	for _, f := range opts {
		f(&o)
	}
	if p.cluster, err = kube.New(ctx, o); err != nil {
		h.t.Fatal(err)
	}
	go func() { _ = c.Start(ctx) }()
	if !c.WaitForCacheSync(ctx) {
		h.t.Fatal("cache did not sync")
	}
	repo := kube.Repository{Owner: h.owner, Namespace: h.ns, ServiceAccountName: "runs", RunnerImage: runnerImage,
		Storage: h.storage, URL: h.repo}
	if change != nil {
		change(&repo)
	}
	if p.executor, err = p.cluster.Executor(repo); err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(cancel)
	return p
}

// stop ends the process as a crash would: nothing is cleaned up.
func (p *controllerProcess) stop() { p.cancel() }

// plan writes a repository with files, plans it in kubernetes mode and
// exports what its runs read into the store, as the reconcile engine does
// before executing.
func (h *jobsHarness) plan(files map[string]string) []render.Run {
	h.t.Helper()
	dir := h.t.TempDir()
	for p, content := range files {
		path := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			h.t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			h.t.Fatal(err)
		}
	}
	r, err := tree.NewDir(dir)
	if err != nil {
		h.t.Fatal(err)
	}
	h.t.Cleanup(func() { r.Close() })
	plan, err := render.Plan(r, render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: "file:///store"})
	if err != nil {
		h.t.Fatal(err)
	}
	st := h.storage.Store()
	for _, run := range plan.Runs {
		if _, err := store.ExportTree(h.ctx, st, r, run.Contract.Context.Path); err != nil {
			h.t.Fatal(err)
		}
		for _, in := range run.Contract.Inputs {
			if in.RepoPath == "" {
				continue
			}
			data, err := r.ReadFile(in.RepoPath, 0)
			if err != nil {
				h.t.Fatal(err)
			}
			if _, err := st.Put(h.ctx, bytes.NewReader(data), in.SHA256); err != nil {
				h.t.Fatal(err)
			}
		}
	}
	return plan.Runs
}

// experiment is a one-experiment repository running script in busybox.
func experiment(name, script string, extra string) map[string]string {
	return map[string]string{
		"data/in.txt": "input\n",
		"experiments/" + name + ".yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: ` + name + `}
spec:
  image: ` + busybox + `
  command: [sh, -c, '` + script + `']
  inputs: [{name: in, file: data/in.txt, path: data/in.txt}]
` + extra,
	}
}

// jobs lists the namespace's Jobs (from the API, not a cache).
func (h *jobsHarness) jobs() []batchv1.Job {
	h.t.Helper()
	list, err := h.clientset.BatchV1().Jobs(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// pods lists the namespace's pods.
func (h *jobsHarness) pods() []corev1.Pod {
	h.t.Helper()
	list, err := h.clientset.CoreV1().Pods(h.ns).List(h.ctx, metav1.ListOptions{})
	if err != nil {
		h.t.Fatal(err)
	}
	return list.Items
}

// eventually polls cond (the test's own checks; the executor never polls)
// until it holds or the timeout passes.
func (h *jobsHarness) eventually(what string, timeout time.Duration, cond func() bool) {
	h.t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			h.t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// prefixExists reports whether a run's store prefix is there.
func (h *jobsHarness) prefixExists(runID string) bool {
	_, err := os.Stat(h.storage.PrefixDir(runID))
	return err == nil
}
