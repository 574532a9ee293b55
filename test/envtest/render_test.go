package envtest_test

import (
	"bytes"
	"context"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	schedulingv1 "k8s.io/api/scheduling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

const runnerImage = "ghcr.io/expsync/expsync@sha256:1111111111111111111111111111111111111111111111111111111111111111"

// warnings collects the API server's warning headers (Pod Security
// admission reports a workload's pod template that breaks the namespace's
// "warn" level this way).
type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
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

// renderedRepositories are every repository whose Jobs must be accepted: the
// examples users copy and each golden rendering case.
func renderedRepositories(t *testing.T) map[string]string {
	t.Helper()
	repos := map[string]string{"examples": filepath.Join("..", "..", "examples", "experiments")}
	cases, err := filepath.Glob(filepath.Join("..", "..", "testdata", "render", "*", "input"))
	if err != nil {
		t.Fatal(err)
	}
	for _, dir := range cases {
		repos["golden-"+filepath.Base(filepath.Dir(dir))] = dir
	}
	if len(repos) < 2 {
		t.Fatalf("found no golden cases under testdata/render; the test would prove little")
	}
	return repos
}

func renderRepository(t *testing.T, dir, namespace string) []render.JobObjects {
	t.Helper()
	r, err := tree.NewDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	plan, err := render.Plan(r, render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: "s3://expsync-store/lab"})
	if err != nil {
		t.Fatalf("plan %s: %v", dir, err)
	}
	objs, err := render.RenderJobs(plan.Runs, render.JobOptions{
		Namespace:   namespace,
		RunnerImage: runnerImage,
		Repository:  "https://git.example/lab/experiments.git",
		Commit:      "0123456789abcdef0123456789abcdef01234567",
		StoreClaim:  "expsync-store",
	})
	if err != nil {
		t.Fatalf("render %s: %v", dir, err)
	}
	if len(objs) == 0 {
		t.Fatalf("%s renders no Jobs", dir)
	}
	return objs
}

// TestRenderedJobsAreAccepted creates every Job of the
// examples and the golden cases on a real API server, in namespaces that
// enforce the "restricted" Pod Security Standard, and checks that
//   - the server accepts them (schema, validation of podFailurePolicy,
//     names, labels, resources, volumes ...) with no warning at all;
//   - what it stored is what was rendered (nothing dropped or rewritten);
//   - a pod made from each Job's template passes Pod Security admission.
func TestRenderedJobsAreAccepted(t *testing.T) {
	cfg := apiServer(t)
	warn := &warnings{}
	cfg.WarningHandler = warn
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	repos := renderedRepositories(t)
	names := make([]string, 0, len(repos))
	for name := range repos {
		names = append(names, name)
	}
	sort.Strings(names)
	total := 0
	for _, name := range names {
		t.Run(name, func(t *testing.T) {
			ns := strings.ToLower(name)
			createRestrictedNamespace(t, ctx, client, ns)
			warn.take()
			for _, objs := range renderRepository(t, repos[name], ns) {
				checkAccepted(t, ctx, client, warn, objs)
				total++
			}
		})
	}
	t.Logf("%d Jobs accepted", total)
}

func createRestrictedNamespace(t testing.TB, ctx context.Context, client kubernetes.Interface, name string) {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
		"pod-security.kubernetes.io/audit":   "restricted",
	}}}
	if _, err := client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", name, err)
	}
}

func checkAccepted(t *testing.T, ctx context.Context, client kubernetes.Interface, warn *warnings, objs render.JobObjects) {
	t.Helper()
	job := objs.Job
	ns := job.Namespace

	created, err := client.BatchV1().Jobs(ns).Create(ctx, job, metav1.CreateOptions{FieldValidation: "Strict"})
	if err != nil {
		t.Errorf("Job %s refused: %v", job.Name, err)
		return
	}
	if w := warn.take(); len(w) > 0 {
		t.Errorf("Job %s accepted with warnings: %s", job.Name, strings.Join(w, "; "))
	}

	// Stored as rendered: the server kept every field we set.
	for k, v := range job.Labels {
		if created.Labels[k] != v {
			t.Errorf("Job %s: label %s stored as %q, rendered %q", job.Name, k, created.Labels[k], v)
		}
	}
	for k, v := range job.Annotations {
		if created.Annotations[k] != v {
			t.Errorf("Job %s: annotation %s stored as %q, rendered %q", job.Name, k, created.Annotations[k], v)
		}
	}
	want, got := job.Spec, created.Spec
	for what, pair := range map[string][2]any{
		"podFailurePolicy":        {want.PodFailurePolicy, got.PodFailurePolicy},
		"backoffLimit":            {want.BackoffLimit, got.BackoffLimit},
		"activeDeadlineSeconds":   {want.ActiveDeadlineSeconds, got.ActiveDeadlineSeconds},
		"suspend":                 {ptr.Deref(want.Suspend, false), ptr.Deref(got.Suspend, false)},
		"ttlSecondsAfterFinished": {want.TTLSecondsAfterFinished, got.TTLSecondsAfterFinished},
		"pod securityContext":     {want.Template.Spec.SecurityContext, got.Template.Spec.SecurityContext},
		"initContainers":          {want.Template.Spec.InitContainers, got.Template.Spec.InitContainers},
		"containers":              {want.Template.Spec.Containers, got.Template.Spec.Containers},
		"volumes":                 {want.Template.Spec.Volumes, got.Template.Spec.Volumes},
		"pod annotations":         {want.Template.Annotations, got.Template.Annotations},
	} {
		if diff := cmp.Diff(pair[0], pair[1]); diff != "" {
			t.Errorf("Job %s: %s changed by the server (-rendered +stored):\n%s", job.Name, what, diff)
		}
	}

	// The cluster's part: a priority class the experiment names exists.
	if pc := job.Spec.Template.Spec.PriorityClassName; pc != "" {
		ensurePriorityClass(t, ctx, client, pc)
	}
	// Pod Security admission enforces on pods, not on Jobs: a dry-run pod
	// from the template must pass the namespace's "restricted" level.
	pod := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-dry", Namespace: ns, Labels: job.Spec.Template.Labels,
			Annotations: job.Spec.Template.Annotations},
		Spec: *job.Spec.Template.Spec.DeepCopy(),
	}
	if _, err := client.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}}); err != nil {
		t.Errorf("a pod of Job %s is refused: %v", job.Name, err)
	}
	if w := warn.take(); len(w) > 0 {
		t.Errorf("a pod of Job %s: warnings %s", job.Name, strings.Join(w, "; "))
	}
}

// TestBrokenJobsAreRefused shows the check above can fail: the same server
// and namespace refuse a rendered Job once it is broken in ways render.Job
// must never produce.
func TestBrokenJobsAreRefused(t *testing.T) {
	cfg := apiServer(t)
	warn := &warnings{}
	cfg.WarningHandler = warn
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	createRestrictedNamespace(t, ctx, client, "broken")
	objs := renderRepository(t, filepath.Join("..", "..", "examples", "experiments"), "broken")[0]

	t.Run("exit code 0 in an In rule", func(t *testing.T) {
		job := objs.Job.DeepCopy()
		job.Name = "broken-policy"
		job.Spec.PodFailurePolicy.Rules[2].OnExitCodes.Values = []int32{0}
		if _, err := client.BatchV1().Jobs("broken").Create(ctx, job, metav1.CreateOptions{}); err == nil {
			t.Errorf("a podFailurePolicy matching exit code 0 was accepted")
		}
	})
	t.Run("name too long for the job-name label", func(t *testing.T) {
		job := objs.Job.DeepCopy()
		job.Name = strings.Repeat("a", 64)
		if _, err := client.BatchV1().Jobs("broken").Create(ctx, job, metav1.CreateOptions{}); err == nil {
			t.Errorf("a 64-character Job name was accepted")
		}
	})
	t.Run("Job whose pods would break the restricted level", func(t *testing.T) {
		job := objs.Job.DeepCopy()
		job.Name = "broken-escalation"
		job.Spec.Template.Spec.InitContainers[0].SecurityContext.Capabilities = nil
		warn.take()
		if _, err := client.BatchV1().Jobs("broken").Create(ctx, job, metav1.CreateOptions{}); err != nil {
			t.Fatalf("create: %v", err)
		}
		if w := warn.take(); len(w) == 0 || !strings.Contains(strings.Join(w, " "), "capabilities") {
			t.Errorf("warnings %q, want Pod Security's warning about capabilities", w)
		}
	})
	t.Run("privilege escalation", func(t *testing.T) {
		pod := &corev1.Pod{
			ObjectMeta: metav1.ObjectMeta{Name: "broken-pod", Namespace: "broken"},
			Spec:       *objs.Job.Spec.Template.Spec.DeepCopy(),
		}
		allow := true
		pod.Spec.Containers[0].SecurityContext.AllowPrivilegeEscalation = &allow
		_, err := client.CoreV1().Pods("broken").Create(ctx, pod, metav1.CreateOptions{DryRun: []string{metav1.DryRunAll}})
		if err == nil || !strings.Contains(err.Error(), "allowPrivilegeEscalation") {
			t.Errorf("a pod allowing privilege escalation: %v, want a Pod Security refusal", err)
		}
	})
}

func ensurePriorityClass(t *testing.T, ctx context.Context, client kubernetes.Interface, name string) {
	t.Helper()
	pc := &schedulingv1.PriorityClass{ObjectMeta: metav1.ObjectMeta{Name: name}, Value: 100}
	if _, err := client.SchedulingV1().PriorityClasses().Create(ctx, pc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("create priority class %s: %v", name, err)
	}
}

// TestRenderOutputAppliesWithServerDryRun sends `expsync render -o json`'s
// exact bytes (render.WriteJSONList, which the CLI prints) to the API server
// as `kubectl apply --server-side --dry-run=server -f -` would: every item of
// the List, server-side applied in dry-run mode with strict field validation.
func TestRenderOutputAppliesWithServerDryRun(t *testing.T) {
	cfg := apiServer(t)
	dyn, err := dynamic.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	createRestrictedNamespace(t, ctx, client, "dry-run")
	objs := renderRepository(t, filepath.Join("..", "..", "examples", "experiments"), "dry-run")
	var out bytes.Buffer
	if err := render.WriteJSONList(&out, objs); err != nil {
		t.Fatal(err)
	}
	var list unstructured.UnstructuredList
	if err := list.UnmarshalJSON(out.Bytes()); err != nil {
		t.Fatalf("decode the List: %v", err)
	}
	if len(list.Items) != len(objs) {
		t.Fatalf("%d items for %d runs", len(list.Items), len(objs))
	}
	resources := map[string]schema.GroupVersionResource{
		"Job": {Group: "batch", Version: "v1", Resource: "jobs"},
	}
	for _, item := range list.Items {
		gvr, ok := resources[item.GetKind()]
		if !ok {
			t.Fatalf("unexpected kind %s", item.GetKind())
		}
		data, err := item.MarshalJSON()
		if err != nil {
			t.Fatal(err)
		}
		_, err = dyn.Resource(gvr).Namespace(item.GetNamespace()).Patch(ctx, item.GetName(), types.ApplyPatchType, data, metav1.PatchOptions{
			FieldManager: "kubectl", DryRun: []string{metav1.DryRunAll}, FieldValidation: "Strict",
		})
		if err != nil {
			t.Errorf("%s %s refused: %v", item.GetKind(), item.GetName(), err)
		}
	}
	// Dry run means nothing was stored.
	jobs, err := client.BatchV1().Jobs("dry-run").List(ctx, metav1.ListOptions{})
	if err != nil || len(jobs.Items) != 0 {
		t.Errorf("after a dry run the namespace holds %d Jobs (%v)", len(jobs.Items), err)
	}
}
