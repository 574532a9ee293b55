package chart

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// repoRoot is expsync's repository, three levels up from this module.
var repoRoot = filepath.Join("..", "..", "..")

// chartDir is the chart under test.
var chartDir = filepath.Join(repoRoot, "charts", "expsync")

// testDigest stands in for a real image digest in tests.
const testDigest = "sha256:4f53cda18c2baa0c0354bb5f9a3ecbe5ed12ab4d8e11ba873c2f11161202b945"

// kubeVersion is the Kubernetes the tests render for: envtest's.
var kubeVersion = &chartutil.KubeVersion{Version: "v1.37.2", Major: "1", Minor: "37"}

// rendered is one rendering of the chart.
type rendered struct {
	Objects []*unstructured.Unstructured
	Notes   string
}

// loadChart loads charts/expsync as Helm does for `helm install ./chart`.
func loadChart(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatalf("load %s: %v", chartDir, err)
	}
	return c
}

// render renders the chart as `helm install --dry-run` does, schema
// validation and NOTES.txt included, for a release "expsync" in namespace.
func render(t *testing.T, namespace string, values map[string]any) (*rendered, error) {
	t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities.Copy(),
		Log:          func(string, ...any) {},
	}
	install := action.NewInstall(cfg)
	install.DryRun, install.ClientOnly, install.Replace = true, true, true
	install.ReleaseName = "expsync"
	install.Namespace = namespace
	install.KubeVersion = kubeVersion
	// The Prometheus Operator's API, so the ServiceMonitor renders as it
	// does on a cluster that has it.
	install.APIVersions = chartutil.VersionSet{"monitoring.coreos.com/v1"}
	rel, err := install.Run(loadChart(t), values)
	if err != nil {
		return nil, err
	}
	objs, err := decodeManifests(rel.Manifest)
	if err != nil {
		t.Fatalf("rendered manifests do not decode: %v\n%s", err, rel.Manifest)
	}
	return &rendered{Objects: objs, Notes: rel.Info.Notes}, nil
}

// mustRender renders and fails the test on an error.
func mustRender(t *testing.T, namespace string, values map[string]any) *rendered {
	t.Helper()
	r, err := render(t, namespace, values)
	if err != nil {
		t.Fatalf("render: %v", err)
	}
	return r
}

// decodeManifests splits a YAML stream into objects (empty documents skipped).
func decodeManifests(manifest string) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []*unstructured.Unstructured
	for {
		var m map[string]any
		if err := dec.Decode(&m); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		if len(m) == 0 {
			continue
		}
		out = append(out, &unstructured.Unstructured{Object: m})
	}
}

// find returns the rendered objects of a kind.
func (r *rendered) find(kind string) []*unstructured.Unstructured {
	var out []*unstructured.Unstructured
	for _, o := range r.Objects {
		if o.GetKind() == kind {
			out = append(out, o)
		}
	}
	return out
}

// one returns the single object of a kind and name, failing otherwise.
func (r *rendered) one(t *testing.T, kind, name string) *unstructured.Unstructured {
	t.Helper()
	var found *unstructured.Unstructured
	for _, o := range r.find(kind) {
		if name == "" || o.GetName() == name {
			if found != nil {
				t.Fatalf("two %s %q rendered", kind, name)
			}
			found = o
		}
	}
	if found == nil {
		t.Fatalf("no %s %q rendered; got %s", kind, name, r.summary())
	}
	return found
}

func (r *rendered) summary() string {
	var b strings.Builder
	for _, o := range r.Objects {
		b.WriteString(o.GetKind() + "/" + o.GetNamespace() + "/" + o.GetName() + " ")
	}
	return b.String()
}

// baseValues are the least a user must give: the image digest.
func baseValues() map[string]any {
	return map[string]any{"image": map[string]any{"digest": testDigest}}
}

// valuesExample is a documented values file and the namespace its
// documentation installs it into.
type valuesExample struct {
	Name      string
	Namespace string
	Values    map[string]any
}

// valuesExamples are the default values and every documented example:
// charts/expsync/examples/*.yaml (their first line says
// "# namespace: NS" for the release namespace) and the HelmRelease values
// of examples/flux.
func valuesExamples(t *testing.T) []valuesExample {
	t.Helper()
	out := []valuesExample{{Name: "default values", Namespace: "expsync-system", Values: baseValues()}}
	files, err := filepath.Glob(filepath.Join(chartDir, "examples", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no values examples in %s/examples: %v", chartDir, err)
	}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ns := "expsync-system"
		if first, _, _ := bytes.Cut(data, []byte("\n")); bytes.HasPrefix(first, []byte("# namespace: ")) {
			ns = strings.TrimSpace(strings.TrimPrefix(string(first), "# namespace: "))
		}
		var v map[string]any
		if err := yaml.Unmarshal(data, &v); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		out = append(out, valuesExample{Name: filepath.Base(f), Namespace: ns, Values: v})
	}
	out = append(out, fluxHelmReleaseValues(t)...)
	return out
}

// fluxHelmReleaseValues are the values of every HelmRelease in examples/flux
// that installs this chart, with their target namespace.
func fluxHelmReleaseValues(t *testing.T) []valuesExample {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(repoRoot, "examples", "flux", "*.yaml"))
	var out []valuesExample
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		objs, err := decodeManifests(string(data))
		if err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		for _, o := range objs {
			if o.GetKind() != "HelmRelease" {
				continue
			}
			values, _, _ := unstructured.NestedMap(o.Object, "spec", "values")
			ns, _, _ := unstructured.NestedString(o.Object, "spec", "targetNamespace")
			if ns == "" {
				ns = o.GetNamespace()
			}
			out = append(out, valuesExample{Name: filepath.Base(f) + " HelmRelease " + o.GetName(), Namespace: ns, Values: values})
		}
	}
	return out
}
