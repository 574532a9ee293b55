package chart

import (
	"fmt"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
)

// TestLint runs Helm's linter (as `helm lint --strict`) on the default
// values and every documented example: any warning or error fails.
func TestLint(t *testing.T) {
	for _, ex := range valuesExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			linter := lint.AllWithKubeVersion(chartDir, ex.Values, ex.Namespace, kubeVersion)
			for _, m := range linter.Messages {
				if m.Severity >= support.WarningSev {
					t.Errorf("helm lint: %s", m)
				} else {
					t.Logf("helm lint: %s", m)
				}
			}
		})
	}
}

// TestRenderExamples renders every documented values example and checks
// what every installation must have.
func TestRenderExamples(t *testing.T) {
	for _, ex := range valuesExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			r := mustRender(t, ex.Namespace, ex.Values)
			checkDeployment(t, r)
			if !strings.Contains(r.Notes, "kubectl") || !strings.Contains(r.Notes, "--for=condition=Ready") {
				t.Errorf("NOTES.txt does not say the next step (create an ExperimentRepository, kubectl wait):\n%s", r.Notes)
			}
			for _, o := range r.Objects {
				if o.GetKind() != "CustomResourceDefinition" && o.GetKind() != "ClusterRole" && o.GetKind() != "ClusterRoleBinding" && o.GetNamespace() == "" {
					t.Errorf("%s %s has no namespace: `kubectl apply` of the rendered chart would put it wherever the context points", o.GetKind(), o.GetName())
				}
			}
		})
	}
}

// checkDeployment checks the controller's Deployment: non-root, read-only
// root file system, no privilege escalation, seccomp RuntimeDefault,
// requests, probes, image by digest.
func checkDeployment(t *testing.T, r *rendered) {
	t.Helper()
	var d appsv1.Deployment
	toTyped(t, r.one(t, "Deployment", ""), &d)
	pod := d.Spec.Template.Spec
	if len(pod.Containers) != 1 {
		t.Fatalf("the controller pod has %d containers, want 1", len(pod.Containers))
	}
	c := pod.Containers[0]
	if !strings.Contains(c.Image, "@sha256:") || strings.Count(c.Image, ":") != 1+strings.Count(strings.Split(c.Image, "@")[0], ":") {
		t.Errorf("image %q is not pinned by digest alone", c.Image)
	}
	psc, sc := pod.SecurityContext, c.SecurityContext
	switch {
	case psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot:
		t.Error("pod securityContext.runAsNonRoot is not true")
	case psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault:
		t.Error("pod seccompProfile is not RuntimeDefault")
	case sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
		t.Error("container readOnlyRootFilesystem is not true")
	case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
		t.Error("container allowPrivilegeEscalation is not false")
	case sc.Capabilities == nil || len(sc.Capabilities.Drop) != 1 || sc.Capabilities.Drop[0] != "ALL":
		t.Error("container capabilities do not drop ALL")
	}
	if c.Resources.Requests.Cpu().IsZero() || c.Resources.Requests.Memory().IsZero() {
		t.Errorf("container requests no cpu or memory: %v", c.Resources.Requests)
	}
	if c.LivenessProbe == nil || c.LivenessProbe.HTTPGet == nil || c.LivenessProbe.HTTPGet.Path != "/healthz" {
		t.Errorf("liveness probe is not /healthz: %+v", c.LivenessProbe)
	}
	if c.ReadinessProbe == nil || c.ReadinessProbe.HTTPGet == nil || c.ReadinessProbe.HTTPGet.Path != "/readyz" {
		t.Errorf("readiness probe is not /readyz: %+v", c.ReadinessProbe)
	}
	if d.Spec.Replicas != nil && *d.Spec.Replicas > 1 && !hasArg(c.Args, "--enable-leader-election=true") {
		t.Errorf("%d replicas without --enable-leader-election=true: %v", *d.Spec.Replicas, c.Args)
	}
}

func hasArg(args []string, want string) bool {
	for _, a := range args {
		if a == want {
			return true
		}
	}
	return false
}

func toTyped(t *testing.T, u *unstructured.Unstructured, into any) {
	t.Helper()
	if err := runtime.DefaultUnstructuredConverter.FromUnstructuredWithValidation(u.Object, into, true); err != nil {
		t.Fatalf("%s %s does not decode strictly into %T: %v", u.GetKind(), u.GetName(), into, err)
	}
}

// TestHostileValues: wrong values fail at install (schema or the chart's
// own checks) with a message naming the value and what to do.
func TestHostileValues(t *testing.T) {
	cases := []struct {
		name   string
		ns     string
		values string // YAML merged over baseValues
		want   []string
	}{
		{"no digest", "", `image: {digest: ""}`, []string{"image.digest is required", "crane digest"}},
		{"a tag instead of a digest", "", `image: {tag: v0.1.0}`, []string{`image.tag "v0.1.0" is not supported`, "image.digest=sha256:"}},
		{"a tag in the digest field", "", `image: {digest: v0.1.0}`, []string{`image.digest "v0.1.0" is not a digest`}},
		{"a short digest", "", `image: {digest: "sha256:abc"}`, []string{`image.digest "sha256:abc" is not a digest`}},
		{"a digest in the repository", "", `image: {repository: "ghcr.io/x/expsync:v1"}`, []string{"/image/repository"}},
		{"a runner image by tag", "", `runnerImage: ghcr.io/x/expsync:v1`, []string{`runnerImage "ghcr.io/x/expsync:v1" is not pinned by digest`}},
		{"negative QPS", "", `controller: {kubeAPIQPS: -1}`, []string{"/controller/kubeAPIQPS", "exclusiveMinimum"}},
		{"zero QPS", "", `controller: {kubeAPIQPS: 0}`, []string{"/controller/kubeAPIQPS"}},
		{"QPS as a string", "", `controller: {kubeAPIQPS: "fast"}`, []string{"/controller/kubeAPIQPS"}},
		{"burst below QPS", "", `controller: {kubeAPIQPS: 100, kubeAPIBurst: 10}`, []string{"controller.kubeAPIBurst (10) is below controller.kubeAPIQPS (100)"}},
		{"zero concurrency", "", `controller: {concurrent: 0}`, []string{"/controller/concurrent"}},
		{"negative in-flight bound", "", `controller: {maxInFlight: -5}`, []string{"/controller/maxInFlight"}},
		{"two replicas without leader election", "", `{replicas: 2, leaderElection: {enabled: false}}`, []string{"replicas is 2 but leaderElection.enabled is false"}},
		{"negative replicas", "", `replicas: -1`, []string{"/replicas"}},
		{"unknown log level", "", `controller: {logLevel: verbose}`, []string{"/controller/logLevel"}},
		{"a misspelt key", "", `controler: {concurrent: 2}`, []string{"additional properties 'controler' not allowed"}},
		{"unknown watch mode", "", `watch: {mode: namespaced}`, []string{"/watch/mode"}},
		{"watch.namespace in cluster mode", "", `watch: {namespace: lab}`, []string{`watch.namespace "lab" is set but watch.mode is cluster`}},
		{"namespaced mode, claims of another namespace", "expsync-system", `{watch: {mode: namespace, namespace: lab}, store: {claims: [expsync-store]}}`,
			[]string{`the controller watches namespace "lab"`, `install the release into "lab"`}},
		{"an invalid namespace", "", `watch: {mode: namespace, namespace: Lab_A}`, []string{"/watch/namespace"}},
		{"a batch interval without unit", "", `controller: {batchInterval: "10"}`, []string{"/controller/batchInterval"}},
		{"a signing key Secret without the key", "", `signing: {secret: {create: true}}`, []string{"signing.secret.create needs signing.secret.key"}},
		{"an unencrypted signing key", "", "signing: {secret: {create: true, password: x, key: \"-----BEGIN PRIVATE KEY-----\\nabc\\n-----END PRIVATE KEY-----\\n\"}}", []string{"not a cosign encrypted private key"}},
		{"a KMS URI of an unknown scheme", "", `signing: {kms: {keyURI: "file:///etc/key"}}`, []string{"/signing/kms/keyURI"}},
		{"notification-controller without a scheme", "", `notificationController: {address: notification-controller.flux-system}`, []string{"/notificationController/address"}},
		{"ServiceMonitor without the Service", "", `metrics: {service: {enabled: false}, serviceMonitor: {enabled: true}}`, []string{"metrics.serviceMonitor.enabled needs metrics.service.enabled"}},
		{"claims and a volume", "", `store: {claims: [a], volume: {nfs: {server: nfs, path: /x}}}`, []string{"store.claims and store.volume both mount"}},
		{"a relative store root", "", `store: {root: stores}`, []string{"/store/root"}},
		{"the created claim listed again", "", `store: {claims: [expsync-store], create: {enabled: true}}`, []string{`store.create.name "expsync-store" is also listed in store.claims`}},
		{"a port out of range", "", `metrics: {service: {port: 70000}}`, []string{"/metrics/service/port"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ns := tc.ns
			if ns == "" {
				ns = "expsync-system"
			}
			values := mergeYAML(t, baseValues(), tc.values)
			_, err := render(t, ns, values)
			if err == nil {
				t.Fatalf("values %s rendered without an error", tc.values)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q:\n%v", w, err)
				}
			}
		})
	}
}

// mergeYAML merges a YAML mapping over base, recursively.
func mergeYAML(t *testing.T, base map[string]any, overlay string) map[string]any {
	t.Helper()
	var o map[string]any
	if err := yamlUnmarshal([]byte(overlay), &o); err != nil {
		t.Fatalf("%s: %v", overlay, err)
	}
	return mergeMaps(base, o)
}

func mergeMaps(a, b map[string]any) map[string]any {
	out := map[string]any{}
	for k, v := range a {
		out[k] = v
	}
	for k, v := range b {
		if bm, ok := v.(map[string]any); ok {
			if am, ok := out[k].(map[string]any); ok {
				out[k] = mergeMaps(am, bm)
				continue
			}
		}
		out[k] = v
	}
	return out
}

// TestNamespaceModeHoldsNoClusterPermission: namespace mode renders Roles
// only, all in the watched or the release namespace, and the controller
// is told to watch that namespace alone.
func TestNamespaceModeHoldsNoClusterPermission(t *testing.T) {
	for _, tc := range []struct{ release, watch string }{{"lab", ""}, {"expsync-system", "lab"}} {
		t.Run(fmt.Sprintf("release %s watch %q", tc.release, tc.watch), func(t *testing.T) {
			values := mergeYAML(t, baseValues(), fmt.Sprintf(`watch: {mode: namespace, namespace: %q}`, tc.watch))
			r := mustRender(t, tc.release, values)
			watched := tc.watch
			if watched == "" {
				watched = tc.release
			}
			for _, kind := range []string{"ClusterRole", "ClusterRoleBinding"} {
				if got := r.find(kind); len(got) > 0 {
					t.Errorf("namespace mode renders a %s: %s", kind, got[0].GetName())
				}
			}
			for _, o := range append(r.find("Role"), r.find("RoleBinding")...) {
				if ns := o.GetNamespace(); ns != watched && ns != tc.release {
					t.Errorf("%s %s in namespace %s, neither watched (%s) nor the release's", o.GetKind(), o.GetName(), ns, watched)
				}
			}
			args := controllerArgs(t, r)
			if !hasArg(args, "--watch-namespace="+watched) {
				t.Errorf("controller args %v do not watch %s alone", args, watched)
			}
		})
	}
}

// controllerArgs returns the controller container's args.
func controllerArgs(t *testing.T, r *rendered) []string {
	t.Helper()
	var d appsv1.Deployment
	toTyped(t, r.one(t, "Deployment", ""), &d)
	return d.Spec.Template.Spec.Containers[0].Args
}
