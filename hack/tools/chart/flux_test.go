package chart

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authorizationv1 "k8s.io/api/authorization/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"
)

// fluxDir holds the objects that install and use expsync through Flux.
var fluxDir = filepath.Join(repoRoot, "examples", "flux")

// TestFluxExamples creates every object of examples/flux server-side on
// envtest, with Flux's CRDs (generated from Flux's API modules) and
// expsync's: all accepted, none with a warning (a misspelt field of a
// HelmRelease or an OCIRepository is one). The Alert selecting
// ExperimentRepositories is refused by Flux's Alert CRD as Flux ships it,
// and accepted once flux-system/alert-kind-patch.yaml is applied to it;
// notification-controller-rbac.yaml lets notification-controller read
// ExperimentRepositories and nothing else of expsync's. The HelmRelease's
// values are rendered, linted and applied by the chart's tests
// (valuesExamples).
func TestFluxExamples(t *testing.T) {
	a := newApplier(t)
	ctx := context.Background()
	a.apply(t, mustRender(t, "expsync-system", baseValues()).find("CustomResourceDefinition"))

	files, err := filepath.Glob(filepath.Join(fluxDir, "*.yaml"))
	if err != nil || len(files) < 4 {
		t.Fatalf("examples/flux has %d files: %v", len(files), err)
	}
	var alerts []*unstructured.Unstructured
	for _, f := range files {
		objs := decodeFile(t, f)
		var rest []*unstructured.Unstructured
		for _, o := range objs {
			if o.GetKind() == "Alert" {
				alerts = append(alerts, o)
				continue
			}
			if o.GetKind() == "Namespace" {
				a.namespace(t, o.GetName())
			}
			rest = append(rest, o)
		}
		t.Run(filepath.Base(f), func(t *testing.T) { a.apply(t, rest) })
	}
	if len(alerts) == 0 {
		t.Fatal("examples/flux has no Alert")
	}

	// Flux's Alert CRD as shipped refuses the kind.
	for _, al := range alerts {
		a.namespace(t, al.GetNamespace())
		err := a.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(al.DeepCopy()), client.FieldOwner("flux"), client.ForceOwnership)
		if err == nil || !strings.Contains(err.Error(), "ExperimentRepository") {
			t.Fatalf("Flux's unpatched Alert CRD accepts %s (err %v): the docs' patch would be needless", describe(al), err)
		}
	}
	// The patch, as kustomize applies it to the CRD.
	patchFile := filepath.Join(fluxDir, "flux-system", "alert-kind-patch.yaml")
	data, err := os.ReadFile(patchFile)
	if err != nil {
		t.Fatal(err)
	}
	patch, err := yaml.YAMLToJSON(data)
	if err != nil {
		t.Fatalf("%s: %v", patchFile, err)
	}
	checkKustomizationNamesPatch(t)
	crd := &apiextensionsv1.CustomResourceDefinition{}
	crd.Name = "alerts.notification.toolkit.fluxcd.io"
	if err := a.c.Patch(ctx, crd, client.RawPatch(types.JSONPatchType, patch)); err != nil {
		t.Fatalf("%s does not apply to Flux's Alert CRD: %v", patchFile, err)
	}
	err = wait.PollUntilContextTimeout(ctx, 200*time.Millisecond, 30*time.Second, true, func(ctx context.Context) (bool, error) {
		for _, al := range alerts {
			if err := a.c.Apply(ctx, client.ApplyConfigurationFromUnstructured(al.DeepCopy()), client.FieldOwner("flux"), client.ForceOwnership); err != nil {
				return false, nil
			}
		}
		return true, nil
	})
	if err != nil {
		t.Fatalf("the Alerts are still refused after the patch: %v", err)
	}
	a.apply(t, alerts) // and without a warning

	// notification-controller may read ExperimentRepositories, not their Secrets.
	for _, tc := range []struct {
		attrs authorizationv1.ResourceAttributes
		want  bool
	}{
		{authorizationv1.ResourceAttributes{Group: "expsync.dev", Resource: "experimentrepositories", Verb: "list"}, true},
		{authorizationv1.ResourceAttributes{Group: "expsync.dev", Resource: "experimentrepositories", Verb: "get", Namespace: "lab"}, true},
		{authorizationv1.ResourceAttributes{Group: "expsync.dev", Resource: "experimentrepositories", Verb: "update", Namespace: "lab"}, false},
		{authorizationv1.ResourceAttributes{Resource: "secrets", Verb: "get", Namespace: "lab"}, false},
	} {
		sar := &authorizationv1.SubjectAccessReview{Spec: authorizationv1.SubjectAccessReviewSpec{
			User:               "system:serviceaccount:flux-system:notification-controller",
			Groups:             []string{"system:serviceaccounts", "system:serviceaccounts:flux-system", "system:authenticated"},
			ResourceAttributes: &tc.attrs,
		}}
		if err := a.c.Create(ctx, sar); err != nil {
			t.Fatal(err)
		}
		if sar.Status.Allowed != tc.want {
			t.Errorf("notification-controller %s %s/%s in %q: allowed %v, want %v", tc.attrs.Verb, tc.attrs.Group, tc.attrs.Resource, tc.attrs.Namespace, sar.Status.Allowed, tc.want)
		}
	}
}

// checkKustomizationNamesPatch: the flux-system kustomization.yaml beside
// the patch names it and targets the Alert CRD.
func checkKustomizationNamesPatch(t *testing.T) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(fluxDir, "flux-system", "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		Patches []struct {
			Path   string
			Target struct{ Kind, Name string }
		}
	}
	if err := yaml.Unmarshal(data, &k); err != nil {
		t.Fatal(err)
	}
	for _, p := range k.Patches {
		if p.Path == "alert-kind-patch.yaml" && p.Target.Kind == "CustomResourceDefinition" && p.Target.Name == "alerts.notification.toolkit.fluxcd.io" {
			return
		}
	}
	t.Errorf("examples/flux/flux-system/kustomization.yaml does not patch the Alert CRD with alert-kind-patch.yaml: %+v", k.Patches)
}
