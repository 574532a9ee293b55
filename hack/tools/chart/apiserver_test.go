package chart

import (
	"context"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/wait"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/expsync/expsync/internal/kubetest"
	"github.com/expsync/expsync/internal/standin"
)

// The package's control plane (kubetest) with Flux's, the Prometheus
// Operator's and Kueue's CRDs, and an audit log of every request (metadata
// only): the RBAC proof reads what the controller's ServiceAccount asked
// for.
var cluster = func() *kubetest.APIServer {
	s := kubetest.New(thirdPartyCRDs("flux"), thirdPartyCRDs("monitoring"),
		filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "..", "kueue-crds"))
	s.Prepare = configureAudit
	s.StartHint = " (and " + thirdPartyCRDs("") + ": hack/envtest/thirdparty-crds.sh)"
	return s
}()

func TestMain(m *testing.M) {
	// The stand-in kubelet of the RBAC proof runs containers by starting
	// this binary again.
	standin.RunSandbox()
	// envtest and the clients log through controller-runtime's logger;
	// the tests read objects and the audit log, not logs.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(cluster.Run(m))
}

// thirdPartyCRDs is where hack/envtest/thirdparty-crds.sh put Flux's and the
// Prometheus Operator's CRDs (beside the envtest binaries).
func thirdPartyCRDs(name string) string {
	return filepath.Join(os.Getenv("KUBEBUILDER_ASSETS"), "..", "thirdparty-crds", name)
}

// apiServer starts kube-apiserver and etcd (envtest) with the third-party
// CRDs installed, on first use (kubetest: skipped without
// KUBEBUILDER_ASSETS, except under CI=true).
func apiServer(t *testing.T) *rest.Config { return cluster.Config(t) }

// warnings collects the API server's warnings (deprecated APIs, Pod
// Security violations, unknown fields).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(code int, agent, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func (w *warnings) take() []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	out := w.list
	w.list = nil
	return out
}

// applier applies objects server-side and records the warnings of each.
type applier struct {
	c     client.Client
	warns *warnings
}

func newApplier(t *testing.T) *applier {
	t.Helper()
	cfg := apiServer(t)
	w := &warnings{}
	cfg.WarningHandler = w
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = apiextensionsv1.AddToScheme(scheme)
	c, err := client.New(cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}
	return &applier{c: c, warns: w}
}

// namespace creates a namespace enforcing (and warning about) Pod Security
// "restricted", as a careful operator labels expsync's namespaces.
func (a *applier) namespace(t *testing.T, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}}}
	if err := a.c.Create(context.Background(), ns); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// apply applies every object server-side (CRDs first, waiting until they
// are established), as Helm and Flux's helm-controller send them, and fails
// on any refusal or warning.
func (a *applier) apply(t *testing.T, objs []*unstructured.Unstructured) {
	t.Helper()
	ctx := context.Background()
	sorted := append([]*unstructured.Unstructured(nil), objs...)
	sort.SliceStable(sorted, func(i, j int) bool {
		return sorted[i].GetKind() == "CustomResourceDefinition" && sorted[j].GetKind() != "CustomResourceDefinition"
	})
	for _, o := range sorted {
		if o.GetNamespace() != "" {
			a.namespace(t, o.GetNamespace())
		}
		a.warns.take()
		err := a.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(o.DeepCopy()), client.FieldOwner("helm"), client.ForceOwnership)
		if err != nil {
			t.Errorf("API server refuses %s: %v", describe(o), err)
			continue
		}
		if w := a.warns.take(); len(w) > 0 {
			t.Errorf("API server warns about %s: %s", describe(o), strings.Join(w, "; "))
		}
		if o.GetKind() == "CustomResourceDefinition" {
			a.waitEstablished(t, o.GetName())
		}
	}
}

func (a *applier) waitEstablished(t *testing.T, name string) {
	t.Helper()
	err := wait.PollUntilContextTimeout(context.Background(), 100*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		var crd apiextensionsv1.CustomResourceDefinition
		if err := a.c.Get(ctx, client.ObjectKey{Name: name}, &crd); err != nil {
			return false, nil
		}
		for _, c := range crd.Status.Conditions {
			if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Fatalf("CRD %s not established: %v", name, err)
	}
	// The client's REST mapper learns the new kind at its next miss.
	_ = meta.NoKindMatchError{}
}

func describe(o *unstructured.Unstructured) string {
	if o.GetNamespace() == "" {
		return o.GetKind() + " " + o.GetName()
	}
	return o.GetKind() + " " + o.GetNamespace() + "/" + o.GetName()
}

// TestRenderedObjectsOnAPIServer creates every object the chart renders for
// the default values and each documented example, server-side, in
// namespaces enforcing Pod Security "restricted": all accepted, none with
// a warning.
func TestRenderedObjectsOnAPIServer(t *testing.T) {
	a := newApplier(t)
	for _, ex := range valuesExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			r := mustRender(t, ex.Namespace, ex.Values)
			a.apply(t, r.Objects)
			// A second apply (helm upgrade, helm-controller's drift
			// correction) changes nothing and warns about nothing.
			a.apply(t, r.Objects)
		})
	}
}

// TestApplierSeesWarnings is the control of the test above: a volume Pod
// Security "restricted" does not allow (a plain nfs volume, which the docs
// tell operators to wrap in a claim) is reported as a warning, so "no
// warning" above means something.
func TestApplierSeesWarnings(t *testing.T) {
	a := newApplier(t)
	values := mergeYAML(t, baseValues(), `store: {volume: {nfs: {server: nfs.example, path: /exports/expsync}}}`)
	r := mustRender(t, "warning-control", values)
	d := r.one(t, "Deployment", "")
	a.namespace(t, "warning-control")
	a.warns.take()
	if err := a.c.Apply(context.Background(), client.ApplyConfigurationFromUnstructured(d.DeepCopy()), client.FieldOwner("helm"), client.ForceOwnership); err != nil {
		t.Fatalf("apply: %v", err)
	}
	w := strings.Join(a.warns.take(), "; ")
	if !strings.Contains(w, "restricted volume types") || !strings.Contains(w, "nfs") {
		t.Errorf("no Pod Security warning for an nfs volume in a restricted namespace; got %q", w)
	}
}
