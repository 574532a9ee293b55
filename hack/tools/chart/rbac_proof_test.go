package chart

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/controller"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/standin"
)

// The RBAC proof: `expsync controller` — the real binary, built from this
// checkout — started with the args the chart renders and nothing but the
// permissions the chart grants its ServiceAccount (a kubeconfig that
// impersonates it on envtest's API server, RBAC enforced), reconciles an
// ExperimentRepository against a real Git server until its runs ran as
// Jobs (real kube-controller-manager, the stand-in kubelet), their results
// were committed back and the object is Ready. Every request the
// ServiceAccount made is read back from the API server's audit log: one
// refused (403) fails the test; a granted rule it never used is reported.

// configureAudit turns on the API server's audit log (metadata of every
// request) in a folder of its own.
func configureAudit(env *envtest.Environment) error {
	dir, err := os.MkdirTemp("", "expsync-chart-audit-")
	if err != nil {
		return err
	}
	policy := filepath.Join(dir, "policy.yaml")
	const rules = "apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n- level: Metadata\n"
	if err := os.WriteFile(policy, []byte(rules), 0o600); err != nil {
		return err
	}
	auditLog = filepath.Join(dir, "audit.log")
	args := env.ControlPlane.GetAPIServer().Configure()
	args.Set("audit-policy-file", policy)
	args.Set("audit-log-path", auditLog)
	args.Set("audit-log-mode", "blocking")
	return nil
}

// auditLog is the API server's audit log (configureAudit).
var auditLog string

// auditEvent is the part of an audit.k8s.io/v1 Event the proof reads.
type auditEvent struct {
	Verb             string `json:"verb"`
	RequestURI       string `json:"requestURI"`
	ImpersonatedUser *struct {
		Username string `json:"username"`
	} `json:"impersonatedUser"`
	ObjectRef *struct {
		Resource    string `json:"resource"`
		Namespace   string `json:"namespace"`
		APIGroup    string `json:"apiGroup"`
		Subresource string `json:"subresource"`
	} `json:"objectRef"`
	ResponseStatus *struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// request is one kind of request: verb, API group, resource[/subresource],
// namespace.
type request struct{ Verb, Group, Resource, Namespace string }

func (r request) String() string {
	g := r.Group
	if g == "" {
		g = "core"
	}
	ns := r.Namespace
	if ns == "" {
		ns = "(cluster)"
	}
	return fmt.Sprintf("%s %s/%s in %s", r.Verb, g, r.Resource, ns)
}

// requestsOf reads the audit log: every request user made (as
// impersonated), with the 403s apart.
func requestsOf(t *testing.T, user string) (used map[request]int, forbidden []string) {
	t.Helper()
	f, err := os.Open(auditLog)
	if err != nil {
		t.Fatalf("audit log: %v", err)
	}
	defer f.Close()
	used = map[request]int{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			t.Fatalf("audit log line %q: %v", sc.Text(), err)
		}
		if e.ImpersonatedUser == nil || e.ImpersonatedUser.Username != user || e.ObjectRef == nil {
			continue
		}
		res := e.ObjectRef.Resource
		if e.ObjectRef.Subresource != "" {
			res += "/" + e.ObjectRef.Subresource
		}
		r := request{e.Verb, e.ObjectRef.APIGroup, res, e.ObjectRef.Namespace}
		if e.ResponseStatus != nil && e.ResponseStatus.Code == 403 {
			forbidden = append(forbidden, r.String()+" ("+e.RequestURI+")")
			continue
		}
		used[r]++
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return used, forbidden
}

// impersonating writes a kubeconfig for cfg's API server whose user is
// the ServiceAccount (as a pod's token would authenticate it: the user and
// its groups), through the admin's credentials.
func impersonating(t *testing.T, cfg *rest.Config, namespace, name string) (string, *rest.Config) {
	t.Helper()
	user := "system:serviceaccount:" + namespace + ":" + name
	groups := []string{"system:serviceaccounts", "system:serviceaccounts:" + namespace, "system:authenticated"}
	kc := clientcmdapi.NewConfig()
	kc.Clusters["envtest"] = &clientcmdapi.Cluster{Server: cfg.Host, CertificateAuthorityData: cfg.CAData}
	kc.AuthInfos["sa"] = &clientcmdapi.AuthInfo{ClientCertificateData: cfg.CertData, ClientKeyData: cfg.KeyData, Token: cfg.BearerToken,
		Impersonate: user, ImpersonateGroups: groups}
	kc.Contexts["sa"] = &clientcmdapi.Context{Cluster: "envtest", AuthInfo: "sa"}
	kc.CurrentContext = "sa"
	path := filepath.Join(t.TempDir(), "kubeconfig")
	if err := clientcmd.WriteToFile(*kc, path); err != nil {
		t.Fatal(err)
	}
	saCfg := rest.CopyConfig(cfg)
	saCfg.Impersonate = rest.ImpersonationConfig{UserName: user, Groups: groups}
	return path, saCfg
}

// expsyncBinary builds the static expsync of this checkout once: the
// controller under test and the runner the stand-in kubelet plays.
var expsyncBinary = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "expsync-chart-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "expsync")
	cmd := exec.Command("go", "build", "-o", bin, "./cmd/expsync")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./cmd/expsync: %v\n%s", err, out)
	}
	return bin, nil
})

// controllerManager starts the package's kube-controller-manager (Job and
// garbage collector controllers) once, for the RBAC proof.
func controllerManager(t *testing.T) { cluster.ControllerManager(t) }

// The proof's experiment: three runs of a shell script.
const (
	proofBusybox    = "docker.io/library/busybox@sha256:73aaf090f3d85aa34ee199857f03fa3a95c8ede2ffd4cc2cdb5b94e566b11662"
	proofExperiment = `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: square
spec:
  image: ` + proofBusybox + `
  command: ["sh", "square.sh", "{{params.x}}"]
  context: code/square
  sweep:
    matrix:
      x: [1, 2, 3]
  outputs: [out/result.txt]
  resources: {cpu: 100m, memory: 16Mi}
  timeout: 1m
`
	proofScript = "set -e\nmkdir -p out\necho $(($1 * $1)) > out/result.txt\n"
)

func TestControllerRunsWithTheChartsPermissions(t *testing.T) {
	if os.Geteuid() != 0 {
		const msg = "the stand-in kubelet needs root to build each pod's sandbox (CI runs as root): run the test as root"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	for _, tc := range []struct {
		mode, release, values string
	}{
		// Every namespace: ClusterRole; the repository's namespace is not
		// the controller's.
		{"cluster", "expsync-system", `{runs: {namespaces: [lab-cluster]}, store: {volume: {persistentVolumeClaim: {claimName: stores}}}}`},
		// One namespace: Roles only, the controller's own namespace.
		{"namespace", "lab-namespace", `{watch: {mode: namespace}, store: {create: {enabled: true, name: store, accessModes: [ReadWriteOnce]}}}`},
	} {
		t.Run(tc.mode, func(t *testing.T) {
			repoNS := tc.release
			if tc.mode == "cluster" {
				repoNS = "lab-cluster"
			}
			proveRBAC(t, tc.release, repoNS, mergeYAML(t, baseValues(), tc.values))
		})
	}
}

func proveRBAC(t *testing.T, release, repoNS string, values map[string]any) {
	bin, err := expsyncBinary()
	if err != nil {
		t.Fatal(err)
	}
	a := newApplier(t)
	controllerManager(t)
	cfg := apiServer(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	// Install the chart as Helm would (the Deployment aside: no kubelet
	// plays the controller's own pod; this test starts its process).
	r := mustRender(t, release, values)
	var objs []*unstructured.Unstructured
	for _, o := range r.Objects {
		if o.GetKind() != "Deployment" {
			objs = append(objs, o)
		}
	}
	a.namespace(t, repoNS)
	a.apply(t, objs)
	if t.Failed() {
		t.FailNow()
	}

	// The repository: a Git server requiring auth, a signing key, both
	// Secrets in the repository's namespace.
	lab := gitpeer.New(t, &gitpeer.Auth{Username: "lab", Password: "s3cret"})
	lab.Commit("experiments", map[string]string{"experiments/square.yaml": proofExperiment, "code/square/square.sh": proofScript})
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string]map[string][]byte{
		"signing-key": {"cosign.key": pair.Private, "cosign.password": []byte("pw"), "cosign.pub": pair.Public},
		"git":         {"username": []byte("lab"), "password": []byte("s3cret")},
	} {
		if err := a.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: repoNS, Name: name}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}

	// The controller's process as the pod runs it: the chart's args; only
	// the pod's mounts and ports become this machine's (--state-dir,
	// --store-root, --metrics-addr, --health-addr).
	args := controllerArgs(t, r)
	storeRoot := t.TempDir()
	claim := "store"
	if err := os.MkdirAll(filepath.Join(storeRoot, repoNS, claim), 0o755); err != nil {
		t.Fatal(err)
	}
	metricsAddr := freeAddr(t)
	local := map[string]string{"--state-dir": t.TempDir(), "--store-root": storeRoot, "--metrics-addr": metricsAddr, "--health-addr": "127.0.0.1:0"}
	var runnerImage string
	for i, arg := range args {
		name, _, _ := strings.Cut(arg, "=")
		if v, ok := local[name]; ok {
			args[i] = name + "=" + v
		}
		if name == "--runner-image" {
			runnerImage = strings.TrimPrefix(arg, name+"=")
		}
	}
	sa := r.one(t, "ServiceAccount", "expsync")
	kubeconfig, saCfg := impersonating(t, cfg, sa.GetNamespace(), sa.GetName())
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, "RUNTIME_NAMESPACE="+release, "HOME="+t.TempDir())
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("expsync controller %s:\n%s", strings.Join(args, " "), tail(out.String(), 6000))
		}
	}()

	// The node: Jobs' pods in the repository's namespace, the claim is
	// the folder the controller sees.
	clientset, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	kubelet := standin.NewKubelet(standin.KubeletOptions{Client: clientset, Runner: bin, RunnerImage: runnerImage, Dir: t.TempDir(),
		Namespaces: []string{repoNS},
		Claims: func(ns, name string) (string, bool) {
			return filepath.Join(storeRoot, ns, name), ns == repoNS && name == claim
		}})
	if err := kubelet.Start(ctx); err != nil {
		t.Fatal(err)
	}

	obj := &v1alpha1.ExperimentRepository{ObjectMeta: metav1.ObjectMeta{Namespace: repoNS, Name: "lab"},
		Spec: v1alpha1.ExperimentRepositorySpec{
			URL: lab.URL(), AllowHTTP: true, SecretRef: &meta.LocalObjectReference{Name: "git"},
			Refs:        []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true}},
			Interval:    &metav1.Duration{Duration: time.Minute},
			Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
			Execution:   v1alpha1.Execution{ServiceAccountName: "expsync-runs"},
			Store:       v1alpha1.Store{ClaimName: claim},
		}}
	c := typedClient(t, cfg)
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(obj)
	deadline := time.Now().Add(4 * time.Minute)
	for {
		if err := c.Get(ctx, key, obj); err != nil {
			t.Fatal(err)
		}
		if ready(obj) && len(obj.Status.Refs) == 1 && obj.Status.Refs[0].Runs.Succeeded == 3 {
			break
		}
		if _, forbidden := requestsOf(t, "system:serviceaccount:"+sa.GetNamespace()+":"+sa.GetName()); len(forbidden) > 0 {
			t.Fatalf("the API server refused the controller %d request(s) the chart does not grant:\n  %s", len(forbidden), strings.Join(forbidden, "\n  "))
		}
		if time.Now().After(deadline) {
			t.Fatalf("not Ready with 3 runs succeeded after 4 minutes; status %+v", obj.Status)
		}
		time.Sleep(500 * time.Millisecond)
	}
	lab.Pull()
	if got := lab.Git(lab.Peer, "log", "-1", "--format=%an %s"); !strings.Contains(got, "expsync") {
		t.Errorf("the results commit is not on main: last commit %q", got)
	}

	// The control: a request the chart does not grant is refused and
	// found in the audit log, so "no 403" above means something.
	user := "system:serviceaccount:" + sa.GetNamespace() + ":" + sa.GetName()
	saClient := typedClient(t, saCfg)
	if err := saClient.List(ctx, &corev1.SecretList{}, client.InNamespace(repoNS)); err == nil {
		t.Error("the controller's ServiceAccount may list Secrets: the chart grants only get")
	}
	used, forbidden := requestsOf(t, user)
	if len(forbidden) != 1 || !strings.HasPrefix(forbidden[0], "list core/secrets in "+repoNS) {
		t.Errorf("refused requests %q, want only the control's list of Secrets", forbidden)
	}
	reportUnused(t, r, used, release, repoNS)
	checkDashboardSeries(t, metricsAddr)
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// seriesOnlyWithKueue are series a dashboard panel uses that the proof's
// cluster cannot produce (no Kueue there).
var seriesOnlyWithKueue = map[string]bool{"expsync_queue_wait_seconds": true}

// checkDashboardSeries: every series the Grafana dashboard queries is one
// the controller serves on its metrics endpoint after reconciling runs, so
// a renamed metric breaks this test, not a panel.
func checkDashboardSeries(t *testing.T, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics endpoint: %v", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	served := map[string]bool{}
	for _, line := range strings.Split(string(body), "\n") {
		if strings.HasPrefix(line, "# TYPE ") {
			served[strings.Fields(line)[2]] = true
		}
	}
	dashboard, err := os.ReadFile(filepath.Join(chartDir, "files", "dashboards", "expsync.json"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`\b(expsync|gotk|controller_runtime)_[a-z_]+`).FindAllString(string(dashboard), -1)
	if len(names) == 0 {
		t.Fatal("the dashboard queries no expsync, gotk or controller_runtime series")
	}
	for _, n := range names {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(n, "_bucket"), "_sum"), "_count")
		if !served[family] && !seriesOnlyWithKueue[family] {
			t.Errorf("the dashboard queries %s, which the controller does not serve (served: %d families)", n, len(served))
		}
	}
}

// ready is `kubectl wait --for=condition=Ready` about the current generation.
func ready(obj *v1alpha1.ExperimentRepository) bool {
	for _, c := range obj.Status.Conditions {
		if c.Type == "Ready" {
			return c.Status == metav1.ConditionTrue && obj.Status.ObservedGeneration == obj.Generation
		}
	}
	return false
}

// reportUnused logs every verb of every rule the chart grants that the
// controller never used in this test (with the requests it did make).
func reportUnused(t *testing.T, r *rendered, used map[request]int, release, repoNS string) {
	t.Helper()
	var lines []string
	for k, n := range used {
		lines = append(lines, fmt.Sprintf("%s ×%d", k, n))
	}
	sort.Strings(lines)
	t.Logf("requests of the controller's ServiceAccount:\n  %s", strings.Join(lines, "\n  "))
	var unused []string
	for _, kind := range []string{"ClusterRole", "Role"} {
		for _, o := range r.find(kind) {
			var role rbacv1.ClusterRole
			toTyped(t, o, &role)
			for _, rule := range role.Rules {
				for _, g := range rule.APIGroups {
					for _, res := range rule.Resources {
						for _, verb := range rule.Verbs {
							if !usedAnywhere(used, request{verb, g, res, o.GetNamespace()}) {
								unused = append(unused, fmt.Sprintf("%s %s: %s", kind, o.GetName(), request{verb, g, res, o.GetNamespace()}))
							}
						}
					}
				}
			}
		}
	}
	sort.Strings(unused)
	if len(unused) > 0 {
		t.Logf("granted but never used in this test (%d; each is named by its marker's comment in internal/controller/rbac.go):\n  %s", len(unused), strings.Join(unused, "\n  "))
	}
}

// usedAnywhere: a ClusterRole's rule (namespace "") counts as used by a
// request in any namespace.
func usedAnywhere(used map[request]int, want request) bool {
	for r := range used {
		if r.Verb == want.Verb && r.Group == want.Group && r.Resource == want.Resource && (want.Namespace == "" || r.Namespace == want.Namespace) {
			return true
		}
	}
	return false
}

func typedClient(t *testing.T, cfg *rest.Config) client.Client {
	t.Helper()
	c, err := client.New(cfg, client.Options{Scheme: controller.NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}
