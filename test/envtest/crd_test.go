package envtest_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"sigs.k8s.io/yaml"

	"github.com/expsync/expsync/api/v1alpha1"
)

var experimentRepositories = schema.GroupVersionResource{Group: v1alpha1.Group, Version: "v1alpha1", Resource: "experimentrepositories"}

// validRepository is the smallest object a user writes; each case of
// TestExperimentRepositoryValidation edits one field of it.
const validRepository = `
apiVersion: expsync.dev/v1alpha1
kind: ExperimentRepository
metadata:
  name: lab
spec:
  url: https://git.example/lab/experiments.git
  secretRef: {name: git-credentials}
  refs:
    - {pattern: main, trusted: true}
  attestation:
    secretRef: {name: signing-key}
  store:
    claimName: expsync-store
`

// applyRepository creates the object from YAML as `kubectl apply` sends it
// (strict field validation: an unknown field is refused, not dropped).
func applyRepository(ctx context.Context, t *testing.T, dyn dynamic.Interface, ns, doc string, edit func(spec map[string]any)) (*unstructured.Unstructured, error) {
	t.Helper()
	var obj map[string]any
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		t.Fatal(err)
	}
	if edit != nil {
		edit(obj["spec"].(map[string]any))
	}
	u := &unstructured.Unstructured{Object: obj}
	return dyn.Resource(experimentRepositories).Namespace(ns).Create(ctx, u, metav1.CreateOptions{FieldValidation: "Strict"})
}

// TestExperimentRepositoryValidation applies bad objects to a real
// kube-apiserver with the generated CRD and checks that each is refused
// with a message that says what is wrong and what to do.
func TestExperimentRepositoryValidation(t *testing.T) {
	cfg := apiServer(t)
	ctx := context.Background()
	dyn := dynamic.NewForConfigOrDie(cfg)
	client := kubernetes.NewForConfigOrDie(cfg)
	ns := "crd-validation"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	refs := func(r ...map[string]any) []any {
		out := make([]any, len(r))
		for i := range r {
			out[i] = r[i]
		}
		return out
	}
	cases := []struct {
		name string
		edit func(spec map[string]any)
		want []string // substrings of the API server's message
	}{
		{"password in the URL", func(s map[string]any) { s["url"] = "https://bob:hunter2@git.example/lab.git" },
			[]string{"spec.url", "a password in the URL", "secretRef"}},
		{"plain http", func(s map[string]any) { s["url"] = "http://git.example/lab.git" },
			[]string{"plain http://", "allowHTTP: true"}},
		{"file URL", func(s map[string]any) { s["url"] = "file:///etc" },
			[]string{"spec.url", "should match"}},
		{"remote helper URL", func(s map[string]any) { s["url"] = "ext::sh -c touch% /tmp/pwned" },
			[]string{"spec.url", "should match"}},
		{"no refs", func(s map[string]any) { s["refs"] = []any{} },
			[]string{"spec.refs", "at least 1 items"}},
		{"untrusted ref without keys", func(s map[string]any) {
			s["refs"] = refs(map[string]any{"pattern": "refs/pull/*/head", "resultsBranch": "expsync/results/pr-{{number}}"})
		}, []string{"untrusted ref runs only commits signed", "verify.secretRef"}},
		{"shared results branch on a glob", func(s map[string]any) {
			s["refs"] = refs(map[string]any{"pattern": "exp/*", "trusted": true, "resultsBranch": "results"})
		}, []string{"spec.refs[0]", "resultsBranch: a literal branch", "expsync/results/pr-{{number}}"}},
		{"pull request without results branch", func(s map[string]any) {
			s["refs"] = refs(map[string]any{"pattern": "refs/pull/*/head", "trusted": true})
		}, []string{"cannot take commits", "results branch"}},
		{"dot-dot in a pattern", func(s map[string]any) {
			s["refs"] = refs(map[string]any{"pattern": "main/../x", "trusted": true})
		}, []string{"spec.refs[0].pattern", "'..' is not allowed"}},
		{"option-like pattern", func(s map[string]any) {
			s["refs"] = refs(map[string]any{"pattern": "--upload-pack=x", "trusted": true})
		}, []string{"spec.refs[0].pattern", "should match"}},
		{"two signing keys", func(s map[string]any) {
			s["attestation"] = map[string]any{"secretRef": map[string]any{"name": "k"}, "kmsKey": "awskms:///alias/x"}
		}, []string{"spec.attestation", "exactly one signing key"}},
		{"no signing key", func(s map[string]any) { s["attestation"] = map[string]any{} },
			[]string{"spec.attestation", "exactly one signing key"}},
		{"unknown KMS", func(s map[string]any) { s["attestation"] = map[string]any{"kmsKey": "file:///key"} },
			[]string{"spec.attestation.kmsKey", "should match"}},
		{"interval too short", func(s map[string]any) { s["interval"] = "1s" },
			[]string{"spec.interval", "at least 10s"}},
		{"interval not a duration", func(s map[string]any) { s["interval"] = "often" },
			[]string{"spec.interval", "should match"}},
		{"runner image by tag", func(s map[string]any) {
			s["execution"] = map[string]any{"runnerImage": "ghcr.io/expsync/expsync:latest"}
		}, []string{"spec.execution.runnerImage", "should match"}},
		{"zero runs in flight", func(s map[string]any) { s["execution"] = map[string]any{"maxInFlight": 0} },
			[]string{"spec.execution.maxInFlight", "greater than or equal to 1"}},
		// Tenancy: a reference has no namespace field, so it cannot name
		// another namespace's Secret, claim or queue.
		{"secret of another namespace", func(s map[string]any) {
			s["secretRef"] = map[string]any{"name": "git", "namespace": "kube-system"}
		}, []string{`unknown field "spec.secretRef.namespace"`}},
		{"claim of another namespace", func(s map[string]any) {
			s["store"] = map[string]any{"claimName": "store", "namespace": "other"}
		}, []string{`unknown field "spec.store.namespace"`}},
		{"no store", func(s map[string]any) { delete(s, "store") },
			[]string{"spec.store", "Required value"}},
		{"verify from a short commit", func(s map[string]any) {
			s["verify"] = map[string]any{"secretRef": map[string]any{"name": "keys"}, "from": []any{"abc123"}}
		}, []string{"spec.verify.from[0]", "should match"}},
		{"author email", func(s map[string]any) {
			s["commit"] = map[string]any{"author": map[string]any{"name": "x", "email": "x <y@z>"}}
		}, []string{"spec.commit.author.email", "should match"}},
		{"unknown forge", func(s map[string]any) {
			s["forge"] = map[string]any{"kind": "bitbucket", "secretRef": map[string]any{"name": "forge-token"}}
		}, []string{"spec.forge.kind", "supported values", "gitea"}},
		{"forge without a token", func(s map[string]any) { s["forge"] = map[string]any{"kind": "gitea"} },
			[]string{"spec.forge.secretRef", "Required value"}},
		{"forge token in the URL", func(s map[string]any) {
			s["forge"] = map[string]any{"kind": "gitea", "baseURL": "https://tok3n@git.example", "secretRef": map[string]any{"name": "forge-token"}}
		}, []string{"spec.forge.baseURL", "should match"}},
		{"forge token of another namespace", func(s map[string]any) {
			s["forge"] = map[string]any{"kind": "gitea", "secretRef": map[string]any{"name": "forge-token", "namespace": "kube-system"}}
		}, []string{`unknown field "spec.forge.secretRef.namespace"`}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := applyRepository(ctx, t, dyn, ns, validRepository, tc.edit)
			if err == nil {
				t.Fatalf("the API server accepted it; want a refusal naming %q", tc.want)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("refusal does not say %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("the refusal repeats the password: %v", err)
			}
		})
	}

	t.Run("valid object gets its defaults", func(t *testing.T) {
		created, err := applyRepository(ctx, t, dyn, ns, validRepository, nil)
		if err != nil {
			t.Fatal(err)
		}
		spec := created.Object["spec"].(map[string]any)
		if spec["interval"] != "1m0s" || spec["timeout"] != "5m0s" {
			t.Errorf("defaults: interval %v, timeout %v; want 1m0s and 5m0s", spec["interval"], spec["timeout"])
		}
		var typed v1alpha1.ExperimentRepository
		data, _ := json.Marshal(created.Object)
		if err := json.Unmarshal(data, &typed); err != nil {
			t.Fatalf("the Go types do not read what the API server returns: %v", err)
		}
		if typed.GetRequeueAfter().String() != "1m0s" {
			t.Errorf("GetRequeueAfter = %s", typed.GetRequeueAfter())
		}
		// An object a Go client created and writes back with an annotation
		// only keeps its generation: the defaults are in the form Go
		// writes durations ("5m0s", not "5m"), so the controller does not
		// rebuild the repository's engine for a spec that did not change.
		var goObj v1alpha1.ExperimentRepository
		if err := json.Unmarshal(data, &goObj); err != nil {
			t.Fatal(err)
		}
		goObj.ObjectMeta = metav1.ObjectMeta{Name: "from-go", Namespace: ns}
		goObj.Spec.Interval, goObj.Spec.Timeout = nil, nil
		m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(&goObj)
		if err != nil {
			t.Fatal(err)
		}
		res := dyn.Resource(experimentRepositories).Namespace(ns)
		first, err := res.Create(ctx, &unstructured.Unstructured{Object: m}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var again v1alpha1.ExperimentRepository
		if err := runtime.DefaultUnstructuredConverter.FromUnstructured(first.Object, &again); err != nil {
			t.Fatal(err)
		}
		again.Annotations = map[string]string{"touched": "yes"}
		if m, err = runtime.DefaultUnstructuredConverter.ToUnstructured(&again); err != nil {
			t.Fatal(err)
		}
		updated, err := res.Update(ctx, &unstructured.Unstructured{Object: m}, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if updated.GetGeneration() != first.GetGeneration() {
			t.Errorf("a Go client's annotation-only update changed the generation %d → %d: a default is not in Go's form", first.GetGeneration(), updated.GetGeneration())
		}
	})

	t.Run("a valid object with every field", func(t *testing.T) {
		_, err := applyRepository(ctx, t, dyn, ns, strings.Replace(validRepository, "name: lab", "name: full", 1), func(s map[string]any) {
			s["url"] = "ssh://git@git.example/lab/experiments.git"
			s["refs"] = refs(map[string]any{"pattern": "main", "trusted": true},
				map[string]any{"pattern": "refs/pull/*/head", "resultsBranch": "expsync/results/pr-{{number}}"})
			s["interval"] = "30s"
			s["verify"] = map[string]any{"required": true, "secretRef": map[string]any{"name": "keys"},
				"from": []any{strings.Repeat("a", 40)}}
			s["commit"] = map[string]any{"author": map[string]any{"name": "expsync", "email": "expsync@lab.example"},
				"signingKey": map[string]any{"name": "commit-key"}, "messageTemplate": "results of {{.Source}}"}
			s["trustedKeys"] = map[string]any{"name": "other-keys"}
			s["execution"] = map[string]any{"serviceAccountName": "runs", "queue": "research", "priorityClassName": "low",
				"maxInFlight": 50, "runnerImage": runnerImage, "imagePullSecrets": []any{map[string]any{"name": "registry"}}}
			s["suspend"] = true
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}

// TestExperimentRepositoryPrinterColumns asks the API server for the table
// `kubectl get exprepo` prints and checks its columns.
func TestExperimentRepositoryPrinterColumns(t *testing.T) {
	cfg := apiServer(t)
	ctx := context.Background()
	client := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ns := "crd-columns"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := applyRepository(ctx, t, dyn, ns, validRepository, nil); err != nil {
		t.Fatal(err)
	}
	raw, err := client.CoreV1().RESTClient().Get().AbsPath("/apis/expsync.dev/v1alpha1/namespaces", ns, "experimentrepositories").
		SetHeader("Accept", "application/json;as=Table;v=v1;g=meta.k8s.io").DoRaw(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var table metav1.Table
	if err := json.Unmarshal(raw, &table); err != nil {
		t.Fatal(err)
	}
	var shown []string
	for _, c := range table.ColumnDefinitions {
		if c.Priority == 0 {
			shown = append(shown, c.Name)
		}
	}
	if got, want := strings.Join(shown, " "), "Name Ready Status Revision Age"; got != want {
		t.Errorf("kubectl get columns: %q, want %q", got, want)
	}
	if len(table.Rows) != 1 {
		t.Errorf("%d rows, want 1", len(table.Rows))
	}
}

// TestExperimentRepositoryStatusIsBounded writes a status with more refs
// than MaxStatusRefs: the API server refuses it, so a controller bug can
// never grow the object towards etcd's limit.
func TestExperimentRepositoryStatusIsBounded(t *testing.T) {
	cfg := apiServer(t)
	ctx := context.Background()
	client := kubernetes.NewForConfigOrDie(cfg)
	dyn := dynamic.NewForConfigOrDie(cfg)
	ns := "crd-status"
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	obj, err := applyRepository(ctx, t, dyn, ns, validRepository, nil)
	if err != nil {
		t.Fatal(err)
	}
	var refs []any
	for i := 0; i <= v1alpha1.MaxStatusRefs; i++ {
		refs = append(refs, map[string]any{"name": "refs/pull/" + strings.Repeat("9", i+1) + "/head"})
	}
	obj.Object["status"] = map[string]any{"refs": refs}
	_, err = dyn.Resource(experimentRepositories).Namespace(ns).UpdateStatus(ctx, obj, metav1.UpdateOptions{})
	if err == nil || !strings.Contains(err.Error(), "must have at most 50 items") {
		t.Fatalf("status with %d refs: %v; want a refusal", len(refs), err)
	}
	obj.Object["status"] = map[string]any{"refs": refs[:v1alpha1.MaxStatusRefs]}
	if _, err := dyn.Resource(experimentRepositories).Namespace(ns).UpdateStatus(ctx, obj, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("status with %d refs: %v", v1alpha1.MaxStatusRefs, err)
	}
}
