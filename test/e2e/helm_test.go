package e2e_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	kstatus "github.com/fluxcd/cli-utils/pkg/kstatus/status"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// chartDir is the real chart (charts/expsync of this tree, or
// $EXPSYNC_CHART). The tier installs exactly what users install.
func chartDir(t testing.TB) string {
	t.Helper()
	dir := os.Getenv("EXPSYNC_CHART")
	if dir == "" {
		dir = filepath.Join("..", "..", "charts", "expsync")
	}
	if _, err := os.Stat(filepath.Join(dir, "Chart.yaml")); err != nil {
		// Until #15 lands the chart; afterwards this never skips (CI has it).
		t.Skipf("no Helm chart at %s (charts/expsync, issue #15): the controller tier installs the real chart", dir)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	return abs
}

// helmBinary is helm built by hack/tools/build-codegen.sh ($EXPSYNC_HELM).
func helmBinary(t testing.TB) string {
	t.Helper()
	if h := os.Getenv("EXPSYNC_HELM"); h != "" {
		return h
	}
	home, _ := os.UserHomeDir()
	h := filepath.Join(home, ".cache", "expsync", "tools", "helm")
	if _, err := os.Stat(h); err != nil {
		t.Fatalf("no helm at %s: build it with hack/tools/build-codegen.sh ~/.cache/expsync/tools helm (make e2e does)", h)
	}
	return h
}

// helm runs helm against the node with the test's kubeconfig.
func (n *node) helm(t testing.TB, args ...string) string {
	t.Helper()
	cmd := exec.Command(helmBinary(t), args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+n.kubeconfig, "HELM_CACHE_HOME="+filepath.Join(n.dir, "helm", "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(n.dir, "helm", "config"), "HELM_DATA_HOME="+filepath.Join(n.dir, "helm", "data"))
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

// helmInstall installs the chart as release name in ns with the values
// file, uninstalled when the test ends, and waits until every object of the
// release is Current as kstatus computes it (what Flux's helm-controller
// and `kubectl wait` accept: a Deployment rolled out and available, a
// ServiceAccount present, a CRD established).
func (n *node) helmInstall(t testing.TB, name, ns, chart, values string) []*unstructured.Unstructured {
	t.Helper()
	file := filepath.Join(t.TempDir(), "values.yaml")
	if err := os.WriteFile(file, []byte(values), 0o644); err != nil {
		t.Fatal(err)
	}
	n.helm(t, "install", name, chart, "--namespace", ns, "--values", file)
	t.Cleanup(func() {
		cmd := exec.Command(helmBinary(t), "uninstall", name, "--namespace", ns, "--wait", "--timeout", "60s")
		cmd.Env = append(os.Environ(), "KUBECONFIG="+n.kubeconfig)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Logf("helm uninstall %s: %v\n%s", name, err, out)
		}
	})
	objs := decodeManifest(t, n.helm(t, "get", "manifest", name, "--namespace", ns))
	if len(objs) == 0 {
		t.Fatalf("helm release %s has no objects", name)
	}
	n.waitCurrent(t, objs, ns, 3*time.Minute)
	return objs
}

// decodeManifest splits a multi-document YAML stream into objects.
func decodeManifest(t testing.TB, manifest string) []*unstructured.Unstructured {
	t.Helper()
	dec := yaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var objs []*unstructured.Unstructured
	for {
		u := &unstructured.Unstructured{}
		if err := dec.Decode(&u.Object); err != nil {
			if errors.Is(err, io.EOF) {
				return objs
			}
			t.Fatalf("decode the release's manifest: %v", err)
		}
		if len(u.Object) > 0 {
			objs = append(objs, u)
		}
	}
}

// waitCurrent polls every object until kstatus computes Current for all
// (namespaced objects without a namespace are in ns).
func (n *node) waitCurrent(t testing.TB, objs []*unstructured.Unstructured, ns string, timeout time.Duration) {
	t.Helper()
	ctx := context.Background()
	states := map[string]string{}
	waitFor(t, timeout, fmt.Sprintf("%d objects of the release to be Current", len(objs)), func() (bool, error) {
		all := true
		for _, o := range objs {
			live := &unstructured.Unstructured{}
			live.SetGroupVersionKind(o.GroupVersionKind())
			key := client.ObjectKey{Name: o.GetName(), Namespace: o.GetNamespace()}
			if namespaced, err := n.ctl.IsObjectNamespaced(o); err == nil && namespaced && key.Namespace == "" {
				key.Namespace = ns
			}
			id := o.GetKind() + "/" + o.GetName()
			if err := n.ctl.Get(ctx, key, live); err != nil {
				states[id] = err.Error()
				all = false
				continue
			}
			res, err := kstatus.Compute(live)
			if err != nil {
				states[id] = err.Error()
				all = false
				continue
			}
			states[id] = fmt.Sprintf("%s: %s", res.Status, res.Message)
			if res.Status != kstatus.CurrentStatus {
				all = false
			}
		}
		return all, nil
	}, func() {
		for id, s := range states {
			t.Logf("%s: %s", id, s)
		}
		n.describe(t, ns)
	})
}
