// Package e2e_test runs experiments on a real single-node Kubernetes: a
// kubelet, containerd and runc on this machine (hack/cluster/up), the images
// built locally (hack/images). What envtest cannot show — that the pods
// expsync renders really start, run as the restricted Pod Security Standard
// demands, verify their inputs, run the command and put the outputs into the
// store — is proved here.
//
// Run with `make e2e` (brings the cluster up, runs this package, brings it
// down and checks that nothing was left behind), or by hand:
//
//	hack/cluster/up
//	source /tmp/expsync-cluster/env && EXPSYNC_E2E=1 go test ./test/e2e/
//	hack/cluster/down
//
// Without EXPSYNC_E2E=1 every test skips, saying so: `make test` never starts
// a cluster.
package e2e_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/serializer"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/executor/kube"
	"github.com/expsync/expsync/render"
)

// node is the real cluster the tests run on, as hack/cluster/up describes it
// in its env file.
type node struct {
	client kubernetes.Interface
	// dir is the cluster's folder ($EXPSYNC_CLUSTER_DIR): host paths for
	// hostPath volumes live under it, so down removes them.
	dir string
	// Images by digest: the runner (expsync), busybox and python.
	expsyncImage, busyboxImage, pythonImage string
	// expsync is the binary inside the expsync image (the same build).
	expsync string
	// nodeIP is the host's address on the pods' bridge: a pod reaches a
	// server of the test there.
	nodeIP string
	// kubeconfig is the admin's (helm uses it); ctl a controller-runtime
	// client of it that knows expsync's API (ExperimentRepository).
	kubeconfig string
	ctl        client.Client
}

// storeClaim is the name of each test namespace's store claim.
const storeClaim = "store"

func realNode(t testing.TB) *node {
	t.Helper()
	if os.Getenv("EXPSYNC_E2E") != "1" {
		t.Skip("needs a real node: run `make e2e`, or hack/cluster/up, `source /tmp/expsync-cluster/env` and EXPSYNC_E2E=1")
	}
	need := func(name string) string {
		v := os.Getenv(name)
		if v == "" {
			t.Fatalf("EXPSYNC_E2E=1 but %s is not set: source the env file hack/cluster/up writes ($EXPSYNC_CLUSTER_DIR/env)", name)
		}
		return v
	}
	n := &node{
		dir:          need("EXPSYNC_CLUSTER_DIR"),
		expsyncImage: need("EXPSYNC_EXPSYNC_IMAGE"),
		busyboxImage: need("EXPSYNC_BUSYBOX_IMAGE"),
		pythonImage:  need("EXPSYNC_PYTHON_IMAGE"),
		nodeIP:       need("EXPSYNC_NODE_IP"),
	}
	n.expsync = filepath.Join(n.dir, "images", "bin", "expsync")
	n.kubeconfig = need("KUBECONFIG")
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	// The tests create a few hundred objects at once; client-go's default
	// 5 QPS would measure the client, not the cluster.
	cfg.QPS, cfg.Burst = 100, 200
	if n.client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatal(err)
	}
	sch := runtime.NewScheme()
	for _, add := range []func(*runtime.Scheme) error{scheme.AddToScheme, apiextensionsv1.AddToScheme, v1alpha1.AddToScheme} {
		if err := add(sch); err != nil {
			t.Fatal(err)
		}
	}
	if n.ctl, err = client.New(cfg, client.Options{Scheme: sch}); err != nil {
		t.Fatal(err)
	}
	return n
}

// namespace creates a namespace that enforces the restricted Pod Security
// Standard (a pod that breaks it is refused, not warned about), deleted when
// the test ends.
func (n *node) namespace(t testing.TB, prefix string) string {
	t.Helper()
	name := fmt.Sprintf("%s-%06d", prefix, rand.IntN(1000000))
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{
		"pod-security.kubernetes.io/enforce": "restricted",
		"pod-security.kubernetes.io/warn":    "restricted",
	}}}
	ctx := context.Background()
	if _, err := n.client.CoreV1().Namespaces().Create(ctx, ns, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("EXPSYNC_E2E_KEEP") == "1" {
			t.Logf("kept namespace %s (EXPSYNC_E2E_KEEP=1)", name)
			return
		}
		_ = n.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	// Pods need the namespace's ServiceAccount, which a controller makes.
	waitFor(t, 30*time.Second, "the default ServiceAccount of "+name, func() (bool, error) {
		_, err := n.client.CoreV1().ServiceAccounts(name).Get(ctx, "default", metav1.GetOptions{})
		return err == nil, ignoreNotFound(err)
	})
	return name
}

// hostStore makes the store of a namespace as the controller will have it:
// a PersistentVolumeClaim named "store", bound to a hostPath
// PersistentVolume on a folder of the host under the cluster's folder (so
// down removes it), opened by the controller's own code
// (kube.VolumeStorage: inputs/ the pods read, runs/<id>/ each pod's prefix,
// results/ the controller's).
func (n *node) hostStore(t testing.TB, ns string) *kube.VolumeStorage {
	t.Helper()
	dir := n.hostClaim(t, ns)
	vs, err := kube.NewVolumeStorage(storeClaim, dir)
	if err != nil {
		t.Fatal(err)
	}
	return vs
}

// hostClaim makes the claim "store" of ns bound to a hostPath
// PersistentVolume on a folder of the host under the cluster's folder (so
// down removes it), owned by the user the controller and the run pods run
// as, and returns the folder.
func (n *node) hostClaim(t testing.TB, ns string) string {
	t.Helper()
	dir := filepath.Join(n.dir, "stores", ns)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	// The controller (UID 65532, as the chart runs it) writes the store; a
	// hostPath volume ignores fsGroup, so the folder is made its own.
	if err := os.Chown(dir, controllerUID, controllerUID); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	class := "expsync-e2e-" + ns
	pv := &corev1.PersistentVolume{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-store"},
		Spec: corev1.PersistentVolumeSpec{
			Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")},
			AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
			StorageClassName:              class,
			PersistentVolumeSource: corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{
				Path: dir, Type: ptr.To(corev1.HostPathDirectory),
			}},
			ClaimRef: &corev1.ObjectReference{Namespace: ns, Name: storeClaim},
		},
	}
	if _, err := n.client.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = n.client.CoreV1().PersistentVolumes().Delete(context.Background(), pv.Name, metav1.DeleteOptions{})
	})
	pvc := &corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: storeClaim, Namespace: ns},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes:      []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
			StorageClassName: ptr.To(class),
			VolumeName:       pv.Name,
			Resources:        corev1.VolumeResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceStorage: resource.MustParse("1Gi")}},
		},
	}
	if _, err := n.client.CoreV1().PersistentVolumeClaims(ns).Create(ctx, pvc, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	return dir
}

// renderJobs runs `expsync render` (the binary of the runner image) on a
// repository folder with the store claim and decodes the Jobs it prints.
func (n *node) renderJobs(t testing.TB, repo, ns string) []render.JobObjects {
	t.Helper()
	cmd := exec.Command(n.expsync, "render", repo, "-o", "json", "-n", ns,
		"--runner-image", n.expsyncImage, "--store-claim", storeClaim)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("expsync render %s: %v", repo, err)
	}
	var list corev1.List
	if err := json.Unmarshal(out, &list); err != nil {
		t.Fatalf("decode the rendered list: %v", err)
	}
	decoder := serializer.NewCodecFactory(scheme.Scheme).UniversalDeserializer()
	objs := make([]render.JobObjects, 0, len(list.Items))
	for _, raw := range list.Items {
		obj, _, err := decoder.Decode(raw.Raw, nil, nil)
		if err != nil {
			t.Fatalf("decode a rendered object: %v", err)
		}
		job, ok := obj.(*batchv1.Job)
		if !ok {
			t.Fatalf("expsync render printed a %T; runs are Jobs alone", obj)
		}
		contract := job.Spec.Template.Annotations[render.AnnotationContract]
		if contract == "" {
			t.Fatalf("Job %s: no contract annotation on its pod template", job.Name)
		}
		sum := sha256.Sum256([]byte(contract))
		objs = append(objs, render.JobObjects{Job: job, ContractJSON: contract, ContractSHA256: hex.EncodeToString(sum[:])})
	}
	return objs
}

// create makes a run's Job the way the controller does: its prefix of the
// store claim emptied and made writable first, then the Job — the run's only
// write to the API server.
func (n *node) create(ctx context.Context, vs *kube.VolumeStorage, objs render.JobObjects) (*batchv1.Job, error) {
	runID := objs.Job.Annotations[render.AnnotationRunID]
	if err := vs.PreparePrefix(ctx, runID); err != nil {
		return nil, err
	}
	job, err := n.client.BatchV1().Jobs(objs.Job.Namespace).Create(ctx, objs.Job, metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("create Job %s: %w", objs.Job.Name, err)
	}
	return job, nil
}

// jobFinished reports a Job's terminal condition: Complete or Failed.
func jobFinished(job *batchv1.Job) (batchv1.JobConditionType, *batchv1.JobCondition) {
	for i, c := range job.Status.Conditions {
		if c.Status == corev1.ConditionTrue && (c.Type == batchv1.JobComplete || c.Type == batchv1.JobFailed) {
			return c.Type, &job.Status.Conditions[i]
		}
	}
	return "", nil
}

// waitJobs waits until every named Job of ns has finished and returns them.
func (n *node) waitJobs(t testing.TB, ns string, names []string, timeout time.Duration) map[string]*batchv1.Job {
	t.Helper()
	want := map[string]bool{}
	for _, name := range names {
		want[name] = true
	}
	done := map[string]*batchv1.Job{}
	ctx := context.Background()
	waitFor(t, timeout, fmt.Sprintf("%d Jobs in %s to finish", len(names), ns), func() (bool, error) {
		list, err := n.client.BatchV1().Jobs(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return false, err
		}
		for i := range list.Items {
			j := &list.Items[i]
			if typ, _ := jobFinished(j); typ != "" && want[j.Name] {
				done[j.Name] = j
			}
		}
		if len(done) == len(want) {
			return true, nil
		}
		// A pod that cannot start never will: say so now, not at the timeout.
		if stuck := n.stuckPod(ns); stuck != "" {
			n.describe(t, ns)
			t.Fatalf("waiting for the Jobs of %s: %s", ns, stuck)
		}
		return false, nil
	}, func() { n.describe(t, ns) })
	return done
}

// stuckPod names a pod of ns whose container waits for a reason that does
// not go away by itself (an image that is not there, a bad spec).
func (n *node) stuckPod(ns string) string {
	pods, err := n.client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		return ""
	}
	for _, p := range pods.Items {
		for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if w := s.State.Waiting; w != nil {
				switch w.Reason {
				case "ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError", "RunContainerError":
					return fmt.Sprintf("pod %s container %s: %s: %s", p.Name, s.Name, w.Reason, w.Message)
				}
			}
		}
	}
	return ""
}

// podsOf returns the pods of a Job, oldest first.
func (n *node) podsOf(t testing.TB, job *batchv1.Job) []corev1.Pod {
	t.Helper()
	list, err := n.client.CoreV1().Pods(job.Namespace).List(context.Background(), metav1.ListOptions{
		LabelSelector: batchv1.JobNameLabel + "=" + job.Name,
	})
	if err != nil {
		t.Fatal(err)
	}
	pods := list.Items
	for i := 1; i < len(pods); i++ {
		for j := i; j > 0 && pods[j].CreationTimestamp.Before(&pods[j-1].CreationTimestamp); j-- {
			pods[j], pods[j-1] = pods[j-1], pods[j]
		}
	}
	return pods
}

// describe logs what a failing test needs to see: pods and their container
// states, and the namespace's warning events.
func (n *node) describe(t testing.TB, ns string) {
	ctx := context.Background()
	pods, err := n.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, p := range pods.Items {
			t.Logf("pod %s: %s %s", p.Name, p.Status.Phase, p.Status.Reason)
			for _, s := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
				t.Logf("  %s: %s", s.Name, containerState(s.State))
			}
		}
	}
	events, err := n.client.CoreV1().Events(ns).List(ctx, metav1.ListOptions{})
	if err == nil {
		for _, e := range events.Items {
			// Every pod says the node has no cluster DNS: there is none.
			if e.Type != corev1.EventTypeNormal && e.Reason != "MissingClusterDNS" {
				t.Logf("event %s %s: %s", e.InvolvedObject.Name, e.Reason, e.Message)
			}
		}
	}
}

func containerState(s corev1.ContainerState) string {
	switch {
	case s.Terminated != nil:
		return fmt.Sprintf("terminated exit %d %s: %s", s.Terminated.ExitCode, s.Terminated.Reason, s.Terminated.Message)
	case s.Running != nil:
		return "running since " + s.Running.StartedAt.String()
	case s.Waiting != nil:
		return fmt.Sprintf("waiting %s: %s", s.Waiting.Reason, s.Waiting.Message)
	}
	return "unknown"
}

// waitFor polls cond every 200 ms until it is true, failing the test after
// timeout (after calling each onTimeout).
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() (bool, error), onTimeout ...func()) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last error
	for {
		ok, err := cond()
		if ok {
			return
		}
		if err != nil {
			last = err
		}
		if time.Now().After(deadline) {
			for _, f := range onTimeout {
				f()
			}
			t.Fatalf("waiting for %s: not done after %s (last error: %v)", what, timeout, last)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func ignoreNotFound(err error) error {
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}

// kubeExamples writes the kubernetes-mode copy of examples/experiments
// (hack/images/examples.sh: the same files, the local images by digest).
func kubeExamples(t testing.TB) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "experiments")
	envFile := filepath.Join(t.TempDir(), "images.env")
	var env strings.Builder
	for _, k := range []string{"EXPSYNC_PYTHON_IMAGE", "EXPSYNC_BUSYBOX_IMAGE"} {
		fmt.Fprintf(&env, "%s=%s\n", k, os.Getenv(k))
	}
	if err := os.WriteFile(envFile, []byte(env.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join("..", "..", "hack", "images", "examples.sh"), envFile, out)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/images/examples.sh: %v\n%s", err, b)
	}
	return out
}
