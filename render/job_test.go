package render

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
)

const (
	testImage  = "docker.io/library/python@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"
	testRunner = "ghcr.io/expsync/expsync@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	testID     = "3f9c0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde"
)

// runBuilder builds test runs: a plain valid run, changed by options.
type runOption func(*Run)

func testRun(opts ...runOption) Run {
	spec := &v1alpha1.ExperimentSpec{
		Image:   testImage,
		Command: []string{"python3", "estimate.py"},
		Timeout: v1alpha1.Duration{Duration: 10 * time.Minute},
	}
	r := Run{
		ID:         testID,
		Experiment: "pi-montecarlo",
		SpecPath:   "experiments/pi.yaml",
		SpecBlob:   "8ab686eafeb1f44702738c8b0f24f2567c36da6d",
		Params:     map[string]any{"samples": 1000, "seed": 1},
		Spec:       spec,
		Contract: contract.Contract{
			Version:    contract.Version,
			RunID:      testID,
			Experiment: "pi-montecarlo",
			Image:      testImage,
			Command:    []string{"python3", "estimate.py", "--samples", "1000"},
			Context:    contract.Context{Path: "experiments/pi", Tree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904"},
			Outputs:    []string{"out/estimate.json"},
			Limits:     contract.Limits{Timeout: contract.Duration{Duration: 10 * time.Minute}},
		},
	}
	for _, o := range opts {
		o(&r)
	}
	return r
}

func withSpec(f func(*v1alpha1.ExperimentSpec)) runOption {
	return func(r *Run) { f(r.Spec) }
}

func withRetries(limit int, codes ...int32) runOption {
	return func(r *Run) {
		r.Spec.Retries = v1alpha1.Retries{Limit: limit, OnExitCodes: codes}
		r.Contract.Retries = contract.Retries{Limit: limit, OnExitCodes: codes}
	}
}

func testOptions() JobOptions {
	return JobOptions{
		Namespace:   "research",
		RunnerImage: testRunner,
		Repository:  "https://git.example/lab/exps.git",
		Commit:      "0123456789abcdef0123456789abcdef01234567",
	}
}

func mustRender(t *testing.T, run Run, opts JobOptions) JobObjects {
	t.Helper()
	objs, err := RenderJobObjects(run, opts)
	if err != nil {
		t.Fatalf("RenderJobObjects: %v", err)
	}
	checkObjects(t, objs)
	return objs
}

// checkObjects asserts what every rendered Job must satisfy, with the API
// machinery's own validation functions.
func checkObjects(t testing.TB, objs JobObjects) {
	t.Helper()
	job := objs.Job
	if errs := validation.IsDNS1123Label(job.Name); len(errs) > 0 {
		t.Errorf("Job name %q: %v", job.Name, errs)
	}
	if len(job.Name) > 63 {
		t.Errorf("Job name %q has %d > 63 characters", job.Name, len(job.Name))
	}
	for what, labels := range map[string]map[string]string{
		"job": job.Labels, "pod template": job.Spec.Template.Labels,
	} {
		for k, v := range labels {
			if errs := validation.IsQualifiedName(k); len(errs) > 0 {
				t.Errorf("%s label key %q: %v", what, k, errs)
			}
			if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
				t.Errorf("%s label %s=%q: %v", what, k, v, errs)
			}
		}
	}
	for k := range job.Annotations {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			t.Errorf("annotation key %q: %v", k, errs)
		}
	}
	if got, err := RunIDFromLabelValue(job.Labels[LabelRunID]); err != nil || got != job.Annotations[AnnotationRunID] {
		t.Errorf("run-id label %q decodes to %q (%v), annotation says %q", job.Labels[LabelRunID], got, err, job.Annotations[AnnotationRunID])
	}
	if job.Spec.TTLSecondsAfterFinished != nil {
		t.Errorf("ttlSecondsAfterFinished is set; a finished Job must stay until its result is collected")
	}
	var c contract.Contract
	inPod := job.Spec.Template.Annotations[AnnotationContract]
	if err := json.Unmarshal([]byte(inPod), &c); err != nil {
		t.Errorf("the pod template's contract does not decode: %v", err)
	} else if c.RunID != job.Annotations[AnnotationRunID] {
		t.Errorf("contract run ID %q, Job annotation %q", c.RunID, job.Annotations[AnnotationRunID])
	}
	if sum := sha256.Sum256([]byte(inPod)); inPod != objs.ContractJSON || hex.EncodeToString(sum[:]) != objs.ContractSHA256 {
		t.Errorf("ContractJSON/ContractSHA256 do not describe the pod template's contract")
	}
	if n := len(job.Spec.Template.Annotations); n != 1 {
		t.Errorf("pod template has %d annotations, want the contract alone", n)
	}
}

func TestJobName(t *testing.T) {
	long := strings.Repeat("a", 40) + "-" + strings.Repeat("b", 30)
	tests := []struct {
		experiment, id, want string
	}{
		{"pi-montecarlo", testID, "pi-montecarlo-3f9c0a1b2c3d4e5f"},
		{"x", "ABCDEF0123456789ffff", "x-abcdef0123456789"},
		{long, testID, long[:46] + "-3f9c0a1b2c3d4e5f"},
		// The cut lands right after a dash: no "--" or trailing dash.
		{strings.Repeat("a", 45) + "-bbbb", testID, strings.Repeat("a", 45) + "-3f9c0a1b2c3d4e5f"},
		{"---", testID, "run-3f9c0a1b2c3d4e5f"},
	}
	for _, tt := range tests {
		got, err := JobName(tt.experiment, tt.id)
		if err != nil {
			t.Fatalf("JobName(%q): %v", tt.experiment, err)
		}
		if got != tt.want {
			t.Errorf("JobName(%q) = %q, want %q", tt.experiment, got, tt.want)
		}
		if len(got) > 63 || len(validation.IsDNS1123Label(got)) > 0 {
			t.Errorf("JobName(%q) = %q is not a DNS-1123 label of at most 63 characters", tt.experiment, got)
		}
	}
	if _, err := JobName("pi", "abc"); err == nil {
		t.Errorf("JobName with a 3-character ID: no error")
	}
}

func TestRunIDLabelValue(t *testing.T) {
	for _, id := range []string{testID, strings.Repeat("0", 64), strings.Repeat("f", 64)} {
		v, err := RunIDLabelValue(id)
		if err != nil {
			t.Fatal(err)
		}
		if len(v) != 52 || v != strings.ToLower(v) {
			t.Errorf("RunIDLabelValue(%s) = %q: want 52 lowercase characters", id, v)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			t.Errorf("RunIDLabelValue(%s) = %q: %v", id, v, errs)
		}
		back, err := RunIDFromLabelValue(v)
		if err != nil || back != id {
			t.Errorf("RunIDFromLabelValue(%q) = %q, %v; want %s", v, back, err, id)
		}
	}
	for _, bad := range []string{"", "xyz", testID[:62], strings.Repeat("g", 64), strings.ToUpper(testID)} {
		if _, err := RunIDLabelValue(bad); err == nil {
			t.Errorf("RunIDLabelValue(%q): no error", bad)
		}
	}
	if _, err := RunIDFromLabelValue("not-base32!"); err == nil {
		t.Errorf("RunIDFromLabelValue of garbage: no error")
	}
}

func TestJobMetadata(t *testing.T) {
	objs := mustRender(t, testRun(func(r *Run) { r.Repeat = 2 }), testOptions())
	job := objs.Job
	wantLabels := map[string]string{
		LabelRunID:      "h6oaugzmhvhf6ydrqkj2jnog27upsaisem2ekvthpcezvk54zxpa",
		LabelExperiment: "pi-montecarlo",
		LabelRepository: RepositoryHash("https://git.example/lab/exps.git"),
		LabelManagedBy:  "expsync",
	}
	if diff := cmp.Diff(wantLabels, job.Labels); diff != "" {
		t.Errorf("labels (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(wantLabels, job.Spec.Template.Labels); diff != "" {
		t.Errorf("pod labels (-want +got):\n%s", diff)
	}
	wantAnnotations := map[string]string{
		AnnotationRunID:      testID,
		AnnotationSpecPath:   "experiments/pi.yaml",
		AnnotationSpecBlob:   "8ab686eafeb1f44702738c8b0f24f2567c36da6d",
		AnnotationRepository: "https://git.example/lab/exps.git",
		AnnotationCommit:     "0123456789abcdef0123456789abcdef01234567",
		AnnotationParams:     `{"samples":1000,"seed":1}`,
		AnnotationRepeat:     "2",
	}
	if diff := cmp.Diff(wantAnnotations, job.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
	if job.Namespace != "research" {
		t.Errorf("namespace %q; want research", job.Namespace)
	}
	if job.Spec.Suspend != nil {
		t.Errorf("a Job without a queue is suspended")
	}

	// Without repository or commit (a working folder), their label and
	// annotations are left out rather than empty.
	bare := mustRender(t, testRun(), JobOptions{RunnerImage: testRunner}).Job
	for _, k := range []string{LabelRepository} {
		if _, ok := bare.Labels[k]; ok {
			t.Errorf("label %s set without a repository", k)
		}
	}
	for _, k := range []string{AnnotationRepository, AnnotationCommit, AnnotationRepeat} {
		if _, ok := bare.Annotations[k]; ok {
			t.Errorf("annotation %s set without a value", k)
		}
	}
}

func TestJobCarriesTheExperimentsLabelsAndAnnotations(t *testing.T) {
	meta := &v1alpha1.ObjectMeta{
		Name:        "pi-montecarlo",
		Labels:      map[string]string{"team": "vision", "cost-center": "c42", "app.kubernetes.io/part-of": "pi"},
		Annotations: map[string]string{"owner": "ada@example.org"},
	}
	objs := mustRender(t, testRun(func(r *Run) { r.Meta = meta }), testOptions())
	for what, labels := range map[string]map[string]string{"job": objs.Job.Labels, "pod": objs.Job.Spec.Template.Labels} {
		if labels["team"] != "vision" || labels["cost-center"] != "c42" || labels[LabelExperiment] != "pi-montecarlo" {
			t.Errorf("%s labels %v lack the experiment's labels or expsync's", what, labels)
		}
	}
	if objs.Job.Annotations["owner"] != "ada@example.org" || objs.Job.Annotations[AnnotationRunID] != testID {
		t.Errorf("job annotations %v", objs.Job.Annotations)
	}

	for _, bad := range []*v1alpha1.ObjectMeta{
		{Labels: map[string]string{"expsync.dev/run-id": "x"}},
		{Labels: map[string]string{"kueue.x-k8s.io/queue-name": "sneaky"}},
		{Labels: map[string]string{"app.kubernetes.io/managed-by": "me"}},
		{Annotations: map[string]string{"expsync.dev/commit": "0"}},
		// The Job controller's own labels: the API server would refuse
		// the Job (a forged controller-uid could pass another Job's pods
		// for this one's).
		{Labels: map[string]string{"batch.kubernetes.io/controller-uid": "x"}},
		{Labels: map[string]string{"controller-uid": "x"}},
		{Labels: map[string]string{"job-name": "x"}},
		{Labels: map[string]string{"kubernetes.io/hostname": "x"}},
		{Labels: map[string]string{"node.k8s.io/x": "x"}},
	} {
		_, err := RenderJobObjects(testRun(func(r *Run) { r.Meta = bad }), testOptions())
		if err == nil || !strings.Contains(err.Error(), "reserved") {
			t.Errorf("metadata %+v: error %v, want a reserved-key refusal", bad, err)
		}
	}
}

func TestJobQueueSuspendsAndLabels(t *testing.T) {
	job := mustRender(t, testRun(withSpec(func(s *v1alpha1.ExperimentSpec) { s.Queue = "research" })), testOptions()).Job
	if got := job.Labels[LabelKueueQueue]; got != "research" {
		t.Errorf("queue label = %q, want research", got)
	}
	if _, ok := job.Spec.Template.Labels[LabelKueueQueue]; ok {
		t.Errorf("queue label copied to the pod template; Kueue reads it from the Job")
	}
	if !ptr.Deref(job.Spec.Suspend, false) {
		t.Errorf("a queued Job is not created suspended")
	}
}

func TestJobPodFailurePolicy(t *testing.T) {
	tests := []struct {
		name       string
		limit      int
		codes      []int32
		wantLimit  int32
		wantCounts []int32
	}{
		{"no retries", 0, nil, 0, []int32{222}},
		{"declared transient codes", 3, []int32{75}, 3, []int32{75, 222}},
		{"sorted and deduplicated", 2, []int32{75, 3, 75, 222}, 2, []int32{3, 75, 222}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := mustRender(t, testRun(withRetries(tt.limit, tt.codes...)), testOptions()).Job
			if got := ptr.Deref(job.Spec.BackoffLimit, -1); got != tt.wantLimit {
				t.Errorf("backoffLimit = %d, want %d", got, tt.wantLimit)
			}
			want := &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
				{Action: batchv1.PodFailurePolicyActionIgnore, OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}}},
				{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: ptr.To("prepare"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: []int32{65}}},
				{Action: batchv1.PodFailurePolicyActionCount, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: ptr.To("run"), Operator: batchv1.PodFailurePolicyOnExitCodesOpIn, Values: tt.wantCounts}},
				{Action: batchv1.PodFailurePolicyActionFailJob, OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{ContainerName: ptr.To("run"), Operator: batchv1.PodFailurePolicyOnExitCodesOpNotIn, Values: []int32{0}}},
			}}
			if diff := cmp.Diff(want, job.Spec.PodFailurePolicy); diff != "" {
				t.Errorf("podFailurePolicy (-want +got):\n%s", diff)
			}
			if got := ptr.Deref(job.Spec.PodReplacementPolicy, ""); got != batchv1.Failed {
				t.Errorf("podReplacementPolicy = %q, want Failed (one attempt at a time)", got)
			}
		})
	}
	for _, bad := range [][]int32{{0}, {-1}, {256}} {
		if _, err := RenderJobObjects(testRun(withRetries(1, bad...)), testOptions()); err == nil || !strings.Contains(err.Error(), "onExitCodes") {
			t.Errorf("onExitCodes %v: error %v, want one naming spec.retries.onExitCodes", bad, err)
		}
	}
}

func TestJobActiveDeadline(t *testing.T) {
	tests := []struct {
		name    string
		timeout time.Duration
		limit   int
		want    int64
	}{
		{"one attempt of 10m", 10 * time.Minute, 0, 900 + 600},
		{"three attempts of 10m", 10 * time.Minute, 2, 3*900 + 600},
		{"no timeout uses the default hour", 0, 0, 5400 + 600},
		{"huge values are capped", 1 << 62, 1000, 1<<31 - 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := testRun(withRetries(tt.limit), withSpec(func(s *v1alpha1.ExperimentSpec) { s.Timeout.Duration = tt.timeout }))
			run.Contract.Limits.Timeout.Duration = tt.timeout
			job := mustRender(t, run, testOptions()).Job
			if got := ptr.Deref(job.Spec.ActiveDeadlineSeconds, 0); got != tt.want {
				t.Errorf("activeDeadlineSeconds = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestJobResources(t *testing.T) {
	q := resource.MustParse
	tests := []struct {
		name string
		in   v1alpha1.Resources
		want corev1.ResourceList
	}{
		{"none", v1alpha1.Resources{}, nil},
		// The runner's own memory comes on top of the run's (RunnerMemoryOverhead).
		{"cpu and memory", v1alpha1.Resources{CPU: "500m", Memory: "512Mi"}, corev1.ResourceList{"cpu": q("500m"), "memory": q("536Mi")}},
		{"memory in G", v1alpha1.Resources{Memory: "1G"}, corev1.ResourceList{"memory": *resource.NewQuantity(1e9+24<<20, resource.DecimalSI)}},
		{"gpu default resource", v1alpha1.Resources{CPU: "4", GPU: 2}, corev1.ResourceList{"cpu": q("4"), "nvidia.com/gpu": q("2")}},
		{"gpu named resource and storage", v1alpha1.Resources{GPU: 1, GPUResource: "amd.com/gpu", EphemeralStorage: "10Gi"}, corev1.ResourceList{"amd.com/gpu": q("1"), "ephemeral-storage": q("10Gi")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			job := mustRender(t, testRun(withSpec(func(s *v1alpha1.ExperimentSpec) { s.Resources = tt.in })), testOptions()).Job
			for _, c := range append(job.Spec.Template.Spec.InitContainers, job.Spec.Template.Spec.Containers...) {
				if diff := cmp.Diff(tt.want, c.Resources.Requests); diff != "" {
					t.Errorf("%s requests (-want +got):\n%s", c.Name, diff)
				}
				if diff := cmp.Diff(tt.want, c.Resources.Limits); diff != "" {
					t.Errorf("%s limits (-want +got):\n%s", c.Name, diff)
				}
			}
		})
	}
}

func TestJobPodIsHardened(t *testing.T) {
	run := testRun(withSpec(func(s *v1alpha1.ExperimentSpec) {
		s.PriorityClassName = "low"
		s.NodeSelector = map[string]string{"gpu": "a100"}
		s.Tolerations = []v1alpha1.Toleration{{Key: "gpu", Operator: "Exists", Effect: "NoSchedule"}}
	}), func(r *Run) {
		r.Contract.Env = []contract.EnvVar{
			{Name: "OMP_NUM_THREADS", Value: "1"},
			{Name: "API_TOKEN", SecretRef: &contract.SecretRef{Name: "lab-tokens", Key: "api"}},
		}
	})
	pod := mustRender(t, run, testOptions()).Job.Spec.Template.Spec

	if pod.RestartPolicy != corev1.RestartPolicyNever {
		t.Errorf("restartPolicy = %q", pod.RestartPolicy)
	}
	if pod.PriorityClassName != "low" || pod.NodeSelector["gpu"] != "a100" || len(pod.Tolerations) != 1 || pod.Tolerations[0].Operator != corev1.TolerationOpExists {
		t.Errorf("placement not rendered: priority %q, nodeSelector %v, tolerations %v", pod.PriorityClassName, pod.NodeSelector, pod.Tolerations)
	}
	if ptr.Deref(pod.AutomountServiceAccountToken, true) || ptr.Deref(pod.EnableServiceLinks, true) {
		t.Errorf("service account token or service links exposed to the run")
	}
	psc := pod.SecurityContext
	if !ptr.Deref(psc.RunAsNonRoot, false) || ptr.Deref(psc.RunAsUser, 0) != DefaultRunAsUser || psc.SeccompProfile == nil || psc.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
		t.Errorf("pod security context %+v", psc)
	}
	if len(pod.InitContainers) != 1 || len(pod.Containers) != 1 {
		t.Fatalf("%d init containers and %d containers, want 1 and 1", len(pod.InitContainers), len(pod.Containers))
	}
	for _, c := range append(pod.InitContainers, pod.Containers...) {
		sc := c.SecurityContext
		if sc == nil || ptr.Deref(sc.AllowPrivilegeEscalation, true) || !ptr.Deref(sc.ReadOnlyRootFilesystem, false) ||
			!ptr.Deref(sc.RunAsNonRoot, false) || sc.Capabilities == nil || !cmp.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) || len(sc.Capabilities.Add) > 0 {
			t.Errorf("container %s security context %+v", c.Name, sc)
		}
		if c.TerminationMessagePolicy != corev1.TerminationMessageFallbackToLogsOnError {
			t.Errorf("container %s terminationMessagePolicy %q", c.Name, c.TerminationMessagePolicy)
		}
		writable := map[string]bool{}
		for _, m := range c.VolumeMounts {
			if !m.ReadOnly {
				writable[m.MountPath] = true
			}
		}
		for _, dir := range []string{WorkDir, TmpDir} {
			if !writable[dir] {
				t.Errorf("container %s: %s is not a writable volume", c.Name, dir)
			}
		}
	}
	initC, main := pod.InitContainers[0], pod.Containers[0]
	if initC.Name != InitContainerName || initC.Image != testRunner || initC.TerminationMessagePath == main.TerminationMessagePath {
		t.Errorf("init container %s image %s message path %s (main %s)", initC.Name, initC.Image, initC.TerminationMessagePath, main.TerminationMessagePath)
	}
	wantInit := []string{"/usr/local/bin/expsync", "exec", "--contract", "/etc/expsync/contract.json",
		"--verify-inputs-only", "--work-dir", "/work/context", "--copy-self-to", "/expsync/expsync", "--termination-message", "/dev/expsync-prepare"}
	if diff := cmp.Diff(wantInit, append(initC.Command, initC.Args...)); diff != "" {
		t.Errorf("init command (-want +got):\n%s", diff)
	}
	wantMain := []string{"/expsync/expsync", "exec", "--contract", "/etc/expsync/contract.json",
		"--prepared-dir", "/work/context", "--work-root", "/work/attempts", "--result", "/outputs/result.json", "--termination-message", "/dev/termination-log"}
	if diff := cmp.Diff(wantMain, append(main.Command, main.Args...)); diff != "" {
		t.Errorf("main command (-want +got):\n%s", diff)
	}
	if main.Image != testImage {
		t.Errorf("main image %q, want the run's %q", main.Image, testImage)
	}
	// Only the secret reaches the pod spec, by reference; the literal goes
	// through the contract.
	wantEnv := []corev1.EnvVar{{Name: "API_TOKEN", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: "lab-tokens"}, Key: "api"}}}}
	if diff := cmp.Diff(wantEnv, main.Env); diff != "" {
		t.Errorf("main env (-want +got):\n%s", diff)
	}
	for _, v := range pod.Volumes {
		if (v.Name == volumeOutputs || v.Name == volumeWork || v.Name == volumeTmp) && v.EmptyDir == nil {
			t.Errorf("volume %+v is not an emptyDir", v)
		}
		if v.Name == volumeContract && (v.DownwardAPI == nil || len(v.DownwardAPI.Items) != 1 ||
			v.DownwardAPI.Items[0].FieldRef.FieldPath != "metadata.annotations['expsync.dev/contract']" ||
			v.DownwardAPI.Items[0].Path != ContractFileName) {
			t.Errorf("contract volume %+v does not present the pod's contract annotation", v)
		}
		if v.PersistentVolumeClaim != nil || v.HostPath != nil {
			t.Errorf("volume %+v reaches outside the pod without a store claim", v)
		}
	}
}

func TestJobRefusesWhatCannotRun(t *testing.T) {
	tests := []struct {
		name string
		run  Run
		opts func(*JobOptions)
		want string
	}{
		{"no runner image", testRun(), func(o *JobOptions) { o.RunnerImage = "" }, "--runner-image"},
		{"host image", testRun(func(r *Run) { r.Contract.Image = "host" }), nil, "digest-pinned"},
		{"bad cpu", testRun(withSpec(func(s *v1alpha1.ExperimentSpec) { s.Resources.CPU = "lots" })), nil, `spec.resources.cpu "lots"`},
		{"zero memory", testRun(withSpec(func(s *v1alpha1.ExperimentSpec) { s.Resources.Memory = "0" })), nil, "spec.resources.memory"},
		{"short ID", testRun(func(r *Run) { r.ID, r.Contract.RunID = "abc", "abc" }), nil, "run ID"},
		{"contract of another run", testRun(func(r *Run) { r.Contract.RunID = strings.Repeat("0", 64) }), nil, "contract is for run 000000000000,"},
		{"huge contract", testRun(func(r *Run) {
			r.Contract.Env = []contract.EnvVar{{Name: "BIG", Value: strings.Repeat("x", 1<<20)}}
		}), nil, "annotation holds at most"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			if tt.opts != nil {
				tt.opts(&opts)
			}
			_, err := RenderJobObjects(tt.run, opts)
			if err == nil {
				t.Fatalf("no error")
			}
			// Every error names the experiment and its file.
			for _, want := range []string{tt.want, "pi-montecarlo", "experiments/pi.yaml"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not mention %q", err, want)
				}
			}
		})
	}
}

func TestJobIsDeterministic(t *testing.T) {
	a := mustRender(t, testRun(), testOptions())
	b := mustRender(t, testRun(), testOptions())
	if diff := cmp.Diff(a, b); diff != "" {
		t.Errorf("two renderings of one run differ:\n%s", diff)
	}
	other := mustRender(t, testRun(func(r *Run) { r.ID = strings.Repeat("ab", 32); r.Contract.RunID = r.ID }), testOptions())
	if other.Job.Name == a.Job.Name {
		t.Errorf("two runs share the Job name %q", a.Job.Name)
	}
}
