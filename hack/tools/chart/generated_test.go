package chart

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/spf13/pflag"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/expsync/expsync/internal/controller"
)

// TestCRDsAreTheGeneratedOnes: the chart's CRDs are config/crd/bases as
// controller-gen wrote them (`make generate`), object for object, with only
// the chart's labels and the keep policy added — never a hand-edited copy.
func TestCRDsAreTheGeneratedOnes(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(repoRoot, "config", "crd", "bases", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no generated CRDs in config/crd/bases: %v", err)
	}
	want := map[string]*unstructured.Unstructured{}
	for _, f := range files {
		objs := decodeFile(t, f)
		for _, o := range objs {
			want[o.GetName()] = o
		}
	}
	r := mustRender(t, "expsync-system", baseValues())
	got := r.find("CustomResourceDefinition")
	if len(got) != len(want) {
		t.Fatalf("chart renders %d CRDs, config/crd/bases has %d", len(got), len(want))
	}
	for _, crd := range got {
		w, ok := want[crd.GetName()]
		if !ok {
			t.Errorf("chart renders CRD %s that config/crd/bases does not have", crd.GetName())
			continue
		}
		if crd.GetAnnotations()["helm.sh/resource-policy"] != "keep" {
			t.Errorf("CRD %s is not kept on uninstall (helm.sh/resource-policy: keep): uninstalling would delete every ExperimentRepository", crd.GetName())
		}
		c := crd.DeepCopy()
		c.SetLabels(nil)
		ann := c.GetAnnotations()
		delete(ann, "helm.sh/resource-policy")
		c.SetAnnotations(ann)
		if diff := cmp.Diff(w.Object, c.Object); diff != "" {
			t.Errorf("CRD %s differs from config/crd/bases (run `make generate`; never edit charts/expsync/files by hand) (-generated +chart):\n%s", crd.GetName(), diff)
		}
	}
	if off := mustRender(t, "expsync-system", mergeYAML(t, baseValues(), `crds: {install: false}`)); len(off.find("CustomResourceDefinition")) != 0 {
		t.Error("crds.install=false still renders CRDs")
	}
}

// TestRBACIsTheGeneratedOne: the rules the chart grants are exactly
// config/rbac/role.yaml (controller-gen, from the controller's
// +kubebuilder:rbac markers), in both watch modes, and the runs'
// ServiceAccount is bound to nothing.
func TestRBACIsTheGeneratedOne(t *testing.T) {
	var watched, own []any
	for _, o := range decodeFile(t, filepath.Join(repoRoot, "config", "rbac", "role.yaml")) {
		rules, _, _ := unstructured.NestedSlice(o.Object, "rules")
		switch o.GetKind() {
		case "ClusterRole":
			watched = rules
		case "Role":
			own = rules
		}
	}
	if len(watched) == 0 || len(own) == 0 {
		t.Fatalf("config/rbac/role.yaml lacks the ClusterRole or the leader election Role")
	}
	for _, mode := range []string{"cluster", "namespace"} {
		t.Run(mode, func(t *testing.T) {
			values := mergeYAML(t, baseValues(), `{watch: {mode: `+mode+`}, runs: {namespaces: []}}`)
			r := mustRender(t, "lab", values)
			kind := map[string]string{"cluster": "ClusterRole", "namespace": "Role"}[mode]
			main := r.one(t, kind, "expsync")
			rules, _, _ := unstructured.NestedSlice(main.Object, "rules")
			if diff := cmp.Diff(watched, rules); diff != "" {
				t.Errorf("%s rules differ from config/rbac/role.yaml's ClusterRole (-generated +chart):\n%s", kind, diff)
			}
			le := r.one(t, "Role", "expsync-leader-election")
			rules, _, _ = unstructured.NestedSlice(le.Object, "rules")
			if diff := cmp.Diff(own, rules); diff != "" {
				t.Errorf("leader election Role differs from config/rbac/role.yaml's Role (-generated +chart):\n%s", diff)
			}
			runsSA := "expsync-runs"
			for _, b := range append(r.find("RoleBinding"), r.find("ClusterRoleBinding")...) {
				subjects, _, _ := unstructured.NestedSlice(b.Object, "subjects")
				for _, s := range subjects {
					if s.(map[string]any)["name"] == runsSA {
						t.Errorf("%s %s binds the runs' ServiceAccount: run pods must hold no permission", b.GetKind(), b.GetName())
					}
				}
			}
			if mode == "namespace" {
				sa := r.one(t, "ServiceAccount", runsSA)
				if v, _, _ := unstructured.NestedBool(sa.Object, "automountServiceAccountToken"); v {
					t.Error("the runs' ServiceAccount mounts a token")
				}
			}
		})
	}
}

// TestArgsAreTheControllersFlags parses the rendered container args with
// `expsync controller`'s own FlagSet: a flag the controller does not have
// (renamed, removed, misspelt) or a value it does not parse fails here,
// not in a CrashLoopBackOff.
func TestArgsAreTheControllersFlags(t *testing.T) {
	for _, ex := range valuesExamples(t) {
		t.Run(ex.Name, func(t *testing.T) {
			args := controllerArgs(t, mustRender(t, ex.Namespace, ex.Values))
			if len(args) == 0 || args[0] != "controller" {
				t.Fatalf("args %v do not start with the controller command", args)
			}
			o := parseControllerArgs(t, args[1:])
			if o.Client.QPS <= 0 || o.Concurrent <= 0 || o.StoreRoot == "" || o.Settings.StateDir == "" || o.RunnerImage == "" {
				t.Errorf("parsed options miss a setting: %+v", o)
			}
			if !strings.Contains(o.RunnerImage, "@sha256:") {
				t.Errorf("--runner-image %q is not pinned by digest", o.RunnerImage)
			}
		})
	}
}

// parseControllerArgs parses args as `expsync controller` does.
func parseControllerArgs(t *testing.T, args []string) *controller.Options {
	t.Helper()
	o := &controller.Options{}
	fs := pflag.NewFlagSet("controller", pflag.ContinueOnError)
	o.BindFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("expsync controller refuses the chart's args %v: %v", args, err)
	}
	if fs.NArg() != 0 {
		t.Fatalf("expsync controller takes no arguments, the chart passes %v", fs.Args())
	}
	return o
}

func decodeFile(t *testing.T, path string) []*unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decodeManifests(string(data))
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return objs
}
