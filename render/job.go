package render

import (
	"bytes"
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"
	"unsafe"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
)

// What a rendered pod looks like — the interface between render.Job and
// `expsync exec` (cmd/expsync/exec.go), which both sides must keep in step:
//
//   - Init container "prepare" (JobOptions.RunnerImage) runs
//     `<RunnerBinary> exec --contract /etc/expsync/contract.json
//     --verify-inputs-only --work-dir /work/context --copy-self-to
//     /expsync/expsync --termination-message /dev/expsync-prepare`: it copies
//     its own static binary into the shared "expsync-bin" volume,
//     materialises the context and inputs and checks every digest. Its
//     termination message is its own, so what the controller attests about
//     inputs is not self-reported by the code under test. A digest mismatch
//     must exit contract.ExitInputMismatch (the Job fails at once); any other failure
//     (a store or URL unreachable) retries.
//   - Container "run" (the run's image) runs `/expsync/expsync exec
//     --contract ... --prepared-dir /work/context --work-root /work/attempts
//     --result /outputs/result.json --termination-message
//     /dev/termination-log`: one attempt of the command in the folder prepare
//     verified, with a clean environment plus the declared variables, the
//     per-attempt timeout on the whole process group, outputs hashed into
//     the store. Its exit code
//     must be the command's, so spec.retries.onExitCodes can name it, or
//     contract.ExitInfrastructure when the runner itself failed.
//   - The contract travels in the pod template, as the annotation
//     AnnotationContract, which a downward API volume presents to both
//     containers as ContractPath: creating the Job is the only write a run
//     needs (a ConfigMap per run was a second one; see
//     docs/kubernetes-jobs.md for the figures). prepare reports the sha256
//     of the contract it read, so the controller can tell that the pod ran
//     the contract it planned.
//   - With JobOptions.StoreClaim, the store is that PersistentVolumeClaim:
//     prepare reads its StoreInputsSubPath read-only (at StoreInputsDir) and
//     both containers write the run's own prefix, RunPrefix(run ID), at
//     StoreRunDir. Nothing else of the claim is in the pod: a run can
//     neither read another run's outputs nor write outside its prefix.
const (
	InitContainerName = "prepare"
	MainContainerName = "run"

	ContractDir      = "/etc/expsync"
	ContractFileName = "contract.json"
	ContractPath     = ContractDir + "/" + ContractFileName
	RunnerDir        = "/expsync"
	RunnerInPod      = RunnerDir + "/expsync"
	WorkDir          = "/work"
	// ContextDir is where prepare materialises and verifies the context
	// and inputs, and where the run container runs the command;
	// AttemptsDir is the runner's scratch root.
	ContextDir  = WorkDir + "/context"
	AttemptsDir = WorkDir + "/attempts"
	TmpDir      = "/tmp"
	// OutputsDir holds the result manifest (ResultPath) the run writes.
	OutputsDir = "/outputs"
	ResultPath = OutputsDir + "/result.json"

	// PrepareTerminationMessagePath is the init container's termination
	// message: the input verification report.
	PrepareTerminationMessagePath = "/dev/expsync-prepare"
	// RunTerminationMessagePath is the main container's: the run result.
	RunTerminationMessagePath = "/dev/termination-log"

	// StoreInputsDir is where prepare sees the objects runs read (the
	// claim's StoreInputsSubPath, read-only); StoreRunDir is the run's own
	// prefix, where its pod writes fetched inputs, outputs, the log and the
	// result.
	StoreInputsDir = "/store/inputs"
	StoreRunDir    = "/store/run"

	// DefaultRunnerBinary is where the runner image keeps a static expsync.
	DefaultRunnerBinary = "/usr/local/bin/expsync"
	// DefaultRunAsUser is the UID and GID pods run as unless JobOptions says
	// otherwise: 65532, "nonroot" in distroless images; any image whose
	// programs do not need to be root (python, busybox, ...) works.
	DefaultRunAsUser int64 = 65532
	// DefaultTimeout stands in for an experiment without a timeout when the
	// Job's backstop deadline is computed (the runner applies its own).
	DefaultTimeout = time.Hour
	// deadlineSlack is added to the backstop for image pulls, input
	// fetching and output upload, which the per-attempt timeout excludes.
	deadlineSlack = 10 * time.Minute
	// MaxContractBytes bounds the contract annotation: the API server
	// allows 256 KiB of annotations per object, and Kueue or a mutating
	// webhook may add a few of their own to the pod.
	MaxContractBytes = 240 << 10
)

// The layout of a store claim (JobOptions.StoreClaim), shared by the pods
// and the controller, which mounts the claim whole.
const (
	// StoreInputsSubPath holds the context trees and repository inputs
	// runs read (a store of its own; pods mount it read-only).
	StoreInputsSubPath = "inputs"
	// StoreRunsSubPath holds one prefix per run (RunPrefix).
	StoreRunsSubPath = "runs"
)

// RunPrefix is the claim's sub-path a run's pod may write: its only
// writable place on the claim.
func RunPrefix(runID string) string { return StoreRunsSubPath + "/" + runID }

// JobOptions are the operator's choices for every Job.
type JobOptions struct {
	// Namespace of the Job; empty leaves it to the client.
	Namespace string
	// RunnerImage holds a static expsync binary at RunnerBinary; it should
	// be digest-pinned like every run image. Required.
	RunnerImage string
	// RunnerBinary defaults to DefaultRunnerBinary.
	RunnerBinary string
	// Repository is the repository URL (label hash and annotation) and
	// Commit the commit planned from; both optional (a working folder has
	// neither).
	Repository string
	Commit     string
	// RunAsUser is the pod's UID and GID; 0 means DefaultRunAsUser. Pods
	// never run as root: runAsNonRoot is always set.
	RunAsUser int64
	// ServiceAccountName for the pod; empty is the namespace's default. Its
	// token is never mounted: the code under test needs no API access.
	ServiceAccountName string
	// ImagePullSecrets are Secret names for private registries.
	ImagePullSecrets []string
	// StoreClaim is the PersistentVolumeClaim holding the store (laid out
	// as StoreInputsSubPath and RunPrefix); empty leaves the pods to the
	// contract's store location.
	StoreClaim string
	// Queue and PriorityClassName apply to runs whose experiment names
	// none (the repository's defaults).
	Queue             string
	PriorityClassName string
}

// JobObjects are what one run needs in the cluster.
type JobObjects struct {
	Job *batchv1.Job
	// ContractJSON is the run contract as the pod reads it (the value of
	// the pod template's AnnotationContract); ContractSHA256 its digest,
	// which prepare reports back.
	ContractJSON   string
	ContractSHA256 string
}

// Job renders the batch/v1 Job of a run.
func Job(run Run, opts JobOptions) (*batchv1.Job, error) {
	objs, err := RenderJobObjects(run, opts)
	if err != nil {
		return nil, err
	}
	return objs.Job, nil
}

// RenderJobObjects renders the Job of a run in kubernetes mode. The output depends only on the run and opts.
func RenderJobObjects(run Run, opts JobOptions) (JobObjects, error) {
	return newJobRenderer(opts).render(run)
}

// jobRenderer renders many runs with one JobOptions, parsing what runs of
// one experiment share (their resources) once.
type jobRenderer struct {
	opts      JobOptions
	resources map[v1alpha1.Resources]parsedResources
}

type parsedResources struct {
	names      []corev1.ResourceName
	quantities []resource.Quantity
	err        error
}

func newJobRenderer(opts JobOptions) *jobRenderer {
	return &jobRenderer{opts: opts, resources: map[v1alpha1.Resources]parsedResources{}}
}

func (jr *jobRenderer) render(run Run) (JobObjects, error) {
	objs, err := jr.renderJobObjects(run)
	if err != nil {
		return JobObjects{}, fmt.Errorf("render the Job of experiment %s (%s) run %s: %w", run.Experiment, run.SpecPath, contract.ShortID(run.ID), err)
	}
	return objs, nil
}

func (jr *jobRenderer) renderJobObjects(run Run) (JobObjects, error) {
	opts := jr.opts
	if opts.RunnerImage == "" {
		return JobObjects{}, errors.New("no runner image: set the image that holds the expsync binary (--runner-image)")
	}
	if run.Spec == nil {
		return JobObjects{}, errors.New("run has no spec")
	}
	if run.Contract.RunID != run.ID {
		return JobObjects{}, fmt.Errorf("the run's contract is for run %s, not %s", contract.ShortID(run.Contract.RunID), contract.ShortID(run.ID))
	}
	if run.Contract.Image == "" || run.Contract.Image == v1alpha1.HostImage {
		return JobObjects{}, fmt.Errorf("image %q cannot run as a Job: kubernetes mode needs a digest-pinned image (repo@sha256:...)", run.Contract.Image)
	}
	name, err := JobName(run.Experiment, run.ID)
	if err != nil {
		return JobObjects{}, err
	}
	labels, err := jobLabels(run, opts)
	if err != nil {
		return JobObjects{}, err
	}
	annotations, err := jobAnnotations(run, opts)
	if err != nil {
		return JobObjects{}, err
	}
	contractJSON, err := encodeContract(run)
	if err != nil {
		return JobObjects{}, err
	}
	parsed, ok := jr.resources[run.Spec.Resources]
	if !ok {
		parsed = parseResources(run.Spec.Resources)
		jr.resources[run.Spec.Resources] = parsed
	}
	if parsed.err != nil {
		return JobObjects{}, parsed.err
	}
	failurePolicy, err := podFailurePolicy(run.Contract.Retries.OnExitCodes)
	if err != nil {
		return JobObjects{}, err
	}

	// Pods carry the same labels (the experiment's own ones included, for
	// cost attribution); the queue label belongs to the Job alone.
	podLabels := maps.Clone(labels)
	jobLabels := labels
	queue := run.Spec.Queue
	if queue == "" {
		queue = opts.Queue
	}
	if queue != "" {
		jobLabels = maps.Clone(labels)
		jobLabels[LabelKueueQueue] = queue
	}

	job := &batchv1.Job{
		TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "Job"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   opts.Namespace,
			Labels:      jobLabels,
			Annotations: annotations,
		},
		Spec: batchv1.JobSpec{
			Parallelism:           ptr.To[int32](1),
			Completions:           ptr.To[int32](1),
			BackoffLimit:          ptr.To(int32(max(0, run.Contract.Retries.Limit))),
			PodFailurePolicy:      failurePolicy,
			PodReplacementPolicy:  ptr.To(batchv1.Failed),
			ActiveDeadlineSeconds: ptr.To(activeDeadlineSeconds(run)),
			// Kueue admits a queued Job by unsuspending it; creating it
			// suspended means it never starts before admission, even if
			// Kueue's webhook has not seen it yet.
			Suspend: suspendFor(queue),
			// Deliberately no TTLSecondsAfterFinished: the controller deletes
			// a Job after it collected the result, never the API server
			// before.
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: podLabels,
					Annotations: map[string]string{AnnotationContract: contractJSON}},
				Spec: podSpec(run, opts, parsed),
			},
		},
	}
	sum := sha256.Sum256([]byte(contractJSON))
	return JobObjects{Job: job, ContractJSON: contractJSON, ContractSHA256: hex.EncodeToString(sum[:])}, nil
}

func suspendFor(queue string) *bool {
	if queue == "" {
		return nil
	}
	return ptr.To(true)
}

func jobLabels(run Run, opts JobOptions) (map[string]string, error) {
	runID, err := RunIDLabelValue(run.ID)
	if err != nil {
		return nil, err
	}
	labels := map[string]string{}
	// The experiment's own labels (validated as Kubernetes labels by the
	// loader) go first; expsync's keys are reserved.
	if run.Meta != nil {
		for k, v := range run.Meta.Labels {
			if reservedKey(k) {
				return nil, fmt.Errorf("metadata.labels: %q is reserved for expsync (set spec.queue for Kueue); remove it", k)
			}
			if systemKey(k) {
				return nil, fmt.Errorf("metadata.labels: %q is reserved for Kubernetes (the Job controller labels a Job's pods with it); remove it", k)
			}
			labels[k] = v
		}
	}
	labels[LabelRunID] = runID
	labels[LabelExperiment] = run.Experiment
	labels[LabelManagedBy] = ManagedBy
	if opts.Repository != "" {
		labels[LabelRepository] = RepositoryHash(opts.Repository)
	}
	return labels, nil
}

// reservedKey reports label and annotation keys that only expsync sets.
func reservedKey(k string) bool {
	return strings.HasPrefix(k, "expsync.dev/") || strings.HasPrefix(k, "kueue.x-k8s.io/") || k == LabelManagedBy
}

// systemKey reports label keys Kubernetes sets on a Job's pods or reserves
// for its own components (kubernetes.io, k8s.io and their subdomains, but
// app.kubernetes.io: the recommended labels are for everyone): the API
// server refuses a Job whose template sets the Job controller's, and the
// others are not an experiment's to set.
func systemKey(k string) bool {
	prefix, _, named := strings.Cut(k, "/")
	if !named {
		return k == "controller-uid" || k == "job-name"
	}
	if prefix == "app.kubernetes.io" {
		return false
	}
	return prefix == "kubernetes.io" || prefix == "k8s.io" ||
		strings.HasSuffix(prefix, ".kubernetes.io") || strings.HasSuffix(prefix, ".k8s.io")
}

func jobAnnotations(run Run, opts JobOptions) (map[string]string, error) {
	a := map[string]string{}
	if run.Meta != nil {
		for k, v := range run.Meta.Annotations {
			if reservedKey(k) {
				return nil, fmt.Errorf("metadata.annotations: %q is reserved for expsync; remove it", k)
			}
			a[k] = v
		}
	}
	a[AnnotationRunID] = run.ID
	a[AnnotationSpecPath] = run.SpecPath
	if run.SpecBlob != "" {
		a[AnnotationSpecBlob] = run.SpecBlob
	}
	if opts.Repository != "" {
		a[AnnotationRepository] = opts.Repository
	}
	if opts.Commit != "" {
		a[AnnotationCommit] = opts.Commit
	}
	if len(run.Params) > 0 {
		params, err := json.Marshal(run.Params)
		if err != nil {
			return nil, fmt.Errorf("encode params: %w", err)
		}
		a[AnnotationParams] = string(params)
	}
	if run.Repeat != 0 {
		a[AnnotationRepeat] = strconv.Itoa(run.Repeat)
	}
	return a, nil
}

// encodeContract returns the contract as the pod reads it: compact JSON
// (the contract of every run of a sweep is sent, so every byte counts; jq
// reads it fine), without HTML escaping so a reviewer reads "&&" and ">" in
// commands as written.
func encodeContract(run Run) (string, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(run.Contract); err != nil {
		return "", fmt.Errorf("encode the run contract: %w", err)
	}
	data := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if len(data) > MaxContractBytes {
		return "", fmt.Errorf("the run contract is %d bytes; a pod annotation holds at most %d (fewer or shorter env values, inputs or outputs)", len(data), MaxContractBytes)
	}
	// data is never written again, so the string can share its bytes.
	return unsafe.String(unsafe.SliceData(data), len(data)), nil
}

// RunnerMemoryOverhead is added to a run's memory request and limit in
// both containers of its pod: `expsync exec` runs in the run's container,
// under the run's own memory limit, and a user's spec.resources.memory is
// what their command may use (as in local mode, where the runner is
// outside the run's cgroup). Measured on the real node
// (test/e2e TestRunnerMemoryInTheRunContainer, docs/real-cluster.md):
// `expsync exec` as PID 1 of the run container holds ~21 MiB RSS (~7 MiB
// anonymous, ~14 MiB of its binary's pages) while the command runs; a
// 32Mi run without this margin had ~10 MiB left and thrashed. The run
// contract, run.json and the OOM message keep the user's value.
var RunnerMemoryOverhead = resource.MustParse("24Mi")

// parseResources reads spec.resources. Limits equal requests for CPU and
// memory: a run that sets both gets the Guaranteed QoS class (evicted last,
// timings comparable between runs), and Kueue's quota counts exactly what
// the run can use (with RunnerMemoryOverhead). GPUs and ephemeral storage
// are limited to what is requested too.
func parseResources(r v1alpha1.Resources) parsedResources {
	var p parsedResources
	add := func(field string, name corev1.ResourceName, value string) error {
		if value == "" {
			return nil
		}
		q, err := resource.ParseQuantity(value)
		if err != nil {
			return fmt.Errorf("spec.resources.%s %q is not a Kubernetes quantity (for example \"500m\", \"2\", \"512Mi\")", field, value)
		}
		if q.Sign() <= 0 {
			return fmt.Errorf("spec.resources.%s %q must be positive", field, value)
		}
		p.names = append(p.names, name)
		p.quantities = append(p.quantities, q)
		return nil
	}
	if p.err = add("cpu", corev1.ResourceCPU, r.CPU); p.err != nil {
		return p
	}
	if p.err = add("memory", corev1.ResourceMemory, r.Memory); p.err != nil {
		return p
	}
	if r.Memory != "" {
		p.quantities[len(p.quantities)-1].Add(RunnerMemoryOverhead)
	}
	if p.err = add("ephemeralStorage", corev1.ResourceEphemeralStorage, r.EphemeralStorage); p.err != nil {
		return p
	}
	if r.GPU < 0 {
		p.err = fmt.Errorf("spec.resources.gpu %d must not be negative", r.GPU)
		return p
	}
	if r.GPU > 0 {
		name := r.GPUResource
		if name == "" {
			name = "nvidia.com/gpu"
		}
		p.err = add("gpu", corev1.ResourceName(name), strconv.Itoa(r.GPU))
	}
	return p
}

// requirements returns fresh maps (objects of different containers and Jobs
// never share one) holding copies of the parsed quantities.
func (p parsedResources) requirements() corev1.ResourceRequirements {
	if len(p.names) == 0 {
		return corev1.ResourceRequirements{}
	}
	req := corev1.ResourceRequirements{
		Requests: make(corev1.ResourceList, len(p.names)),
		Limits:   make(corev1.ResourceList, len(p.names)),
	}
	for i, name := range p.names {
		req.Requests[name] = p.quantities[i].DeepCopy()
		req.Limits[name] = p.quantities[i].DeepCopy()
	}
	return req
}

// podFailurePolicy retries what is transient and nothing else. Rules apply in
// order, the first match wins; a failure that matches none counts against
// backoffLimit (a retry).
//
//  1. The pod was disrupted (preempted, evicted, its node drained): Ignore —
//     an infrastructure failure retries without using up a retry.
//  2. The init container found an input whose digest is wrong: FailJob.
//  3. The command exited with a code the experiment declares transient, or
//     the runner's own infrastructure code: Count (retry).
//  4. The main container exited with any other non-zero code: FailJob.
//
// Other init container failures (a store or URL unreachable) match nothing
// and retry.
func podFailurePolicy(transient []int32) (*batchv1.PodFailurePolicy, error) {
	retryCodes := []int32{contract.ExitInfrastructure}
	for _, c := range transient {
		if c <= 0 || c > 255 {
			return nil, fmt.Errorf("spec.retries.onExitCodes: %d is not an exit code (1-255)", c)
		}
		retryCodes = append(retryCodes, c)
	}
	slices.Sort(retryCodes)
	retryCodes = slices.Compact(retryCodes)
	return &batchv1.PodFailurePolicy{Rules: []batchv1.PodFailurePolicyRule{
		{
			Action:          batchv1.PodFailurePolicyActionIgnore,
			OnPodConditions: []batchv1.PodFailurePolicyOnPodConditionsPattern{{Type: corev1.DisruptionTarget, Status: corev1.ConditionTrue}},
		},
		{
			Action: batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: ptr.To(InitContainerName),
				Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
				Values:        []int32{contract.ExitInputMismatch},
			},
		},
		{
			Action: batchv1.PodFailurePolicyActionCount,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: ptr.To(MainContainerName),
				Operator:      batchv1.PodFailurePolicyOnExitCodesOpIn,
				Values:        retryCodes,
			},
		},
		{
			Action: batchv1.PodFailurePolicyActionFailJob,
			OnExitCodes: &batchv1.PodFailurePolicyOnExitCodesRequirement{
				ContainerName: ptr.To(MainContainerName),
				Operator:      batchv1.PodFailurePolicyOnExitCodesOpNotIn,
				Values:        []int32{0},
			},
		},
	}}, nil
}

// activeDeadlineSeconds is a generous backstop, never the timeout itself
// (the runner enforces that per attempt): every allowed attempt at 1.5 times
// its timeout, plus slack for pulls, inputs and uploads.
func activeDeadlineSeconds(run Run) int64 {
	timeout := run.Spec.Timeout.Duration
	if timeout <= 0 {
		timeout = run.Contract.Limits.Timeout.Duration
	}
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	attempts := float64(max(0, run.Contract.Retries.Limit) + 1)
	seconds := attempts*timeout.Seconds()*1.5 + deadlineSlack.Seconds()
	if seconds > math.MaxInt32 {
		return math.MaxInt32
	}
	return int64(math.Ceil(seconds))
}

func podSpec(run Run, opts JobOptions, resources parsedResources) corev1.PodSpec {
	uid := opts.RunAsUser
	if uid == 0 {
		uid = DefaultRunAsUser
	}
	runner := opts.RunnerBinary
	if runner == "" {
		runner = DefaultRunnerBinary
	}
	spec := corev1.PodSpec{
		RestartPolicy:                corev1.RestartPolicyNever,
		ServiceAccountName:           opts.ServiceAccountName,
		AutomountServiceAccountToken: ptr.To(false),
		// No service variables: the command's environment is what the
		// experiment declares, nothing the namespace happens to contain.
		EnableServiceLinks: ptr.To(false),
		PriorityClassName:  cmp.Or(run.Spec.PriorityClassName, opts.PriorityClassName),
		NodeSelector:       cloneOrNil(run.Spec.NodeSelector),
		Tolerations:        tolerations(run.Spec.Tolerations),
		SecurityContext: &corev1.PodSecurityContext{
			RunAsNonRoot:   ptr.To(true),
			RunAsUser:      ptr.To(uid),
			RunAsGroup:     ptr.To(uid),
			FSGroup:        ptr.To(uid),
			SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		ImagePullSecrets: pullSecrets(opts.ImagePullSecrets),
		Volumes:          volumes(opts.StoreClaim),
		InitContainers: []corev1.Container{{
			Name:    InitContainerName,
			Image:   opts.RunnerImage,
			Command: []string{runner},
			Args: append([]string{"exec", "--contract", ContractPath,
				"--verify-inputs-only", "--work-dir", ContextDir,
				"--copy-self-to", RunnerInPod,
				"--termination-message", PrepareTerminationMessagePath},
				storeArgs(opts, true)...),
			// The pod's requests are the larger of the init container's and
			// the main container's, so giving prepare the run's resources
			// costs no quota and lets it hash large inputs at full speed.
			Resources:                resources.requirements(),
			VolumeMounts:             mounts(true, opts.StoreClaim != "", run.ID),
			TerminationMessagePath:   PrepareTerminationMessagePath,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			ImagePullPolicy:          corev1.PullIfNotPresent,
			SecurityContext:          containerSecurityContext(),
		}},
		Containers: []corev1.Container{{
			Name:    MainContainerName,
			Image:   run.Contract.Image,
			Command: []string{RunnerInPod},
			Args: append([]string{"exec", "--contract", ContractPath,
				"--prepared-dir", ContextDir,
				"--work-root", AttemptsDir,
				"--result", ResultPath,
				"--termination-message", RunTerminationMessagePath},
				storeArgs(opts, false)...),
			WorkingDir:               WorkDir,
			Env:                      secretEnv(run),
			Resources:                resources.requirements(),
			VolumeMounts:             mounts(false, opts.StoreClaim != "", run.ID),
			TerminationMessagePath:   RunTerminationMessagePath,
			TerminationMessagePolicy: corev1.TerminationMessageFallbackToLogsOnError,
			ImagePullPolicy:          corev1.PullIfNotPresent,
			SecurityContext:          containerSecurityContext(),
		}},
	}
	return spec
}

// containerSecurityContext is the "restricted" Pod Security Standard and a
// read-only root file system; everything writable is an emptyDir.
func containerSecurityContext() *corev1.SecurityContext {
	return &corev1.SecurityContext{
		AllowPrivilegeEscalation: ptr.To(false),
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		Privileged:               ptr.To(false),
		ReadOnlyRootFilesystem:   ptr.To(true),
		RunAsNonRoot:             ptr.To(true),
		SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
	}
}

// Volume names.
const (
	volumeRunner   = "expsync-bin"
	volumeContract = "contract"
	volumeWork     = "work"
	volumeTmp      = "tmp"
	volumeOutputs  = "outputs"
	volumeStore    = "store"
)

func volumes(storeClaim string) []corev1.Volume {
	v := []corev1.Volume{
		{Name: volumeRunner, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: volumeContract, VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
			Items: []corev1.DownwardAPIVolumeFile{{
				Path:     ContractFileName,
				FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v1", FieldPath: "metadata.annotations['" + AnnotationContract + "']"},
			}},
			DefaultMode: ptr.To[int32](0o444),
		}}},
		{Name: volumeWork, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: volumeTmp, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: volumeOutputs, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
	}
	if storeClaim != "" {
		v = append(v, corev1.Volume{Name: volumeStore, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: storeClaim},
		}})
	}
	return v
}

// mounts: prepare writes the runner binary and the work folder; the run
// container gets the binary read-only and writes work, tmp and outputs. Of
// the store claim, prepare reads the inputs and both write the run's own
// prefix, nothing else.
func mounts(prepare, store bool, runID string) []corev1.VolumeMount {
	m := make([]corev1.VolumeMount, 0, 7)
	m = append(m, []corev1.VolumeMount{
		{Name: volumeRunner, MountPath: RunnerDir, ReadOnly: !prepare},
		{Name: volumeContract, MountPath: ContractDir, ReadOnly: true},
		{Name: volumeWork, MountPath: WorkDir},
		{Name: volumeTmp, MountPath: TmpDir},
	}...)
	if !prepare {
		m = append(m, corev1.VolumeMount{Name: volumeOutputs, MountPath: OutputsDir})
	}
	if store {
		if prepare {
			m = append(m, corev1.VolumeMount{Name: volumeStore, MountPath: StoreInputsDir, SubPath: StoreInputsSubPath, ReadOnly: true})
		}
		m = append(m, corev1.VolumeMount{Name: volumeStore, MountPath: StoreRunDir, SubPath: RunPrefix(runID)})
	}
	return m
}

// storeArgs point expsync exec at the claim's mounts: prepare reads the
// inputs and writes what it fetches to the run's prefix; the run container
// stores outputs, the log and the result in the prefix.
func storeArgs(opts JobOptions, prepare bool) []string {
	switch {
	case opts.StoreClaim == "":
		return nil
	case prepare:
		return []string{"--store", StoreInputsDir, "--run-store", StoreRunDir}
	default:
		return []string{"--store", StoreRunDir}
	}
}

// secretEnv exposes each secret reference under its declared name; the
// runner passes it on to the command and never records its value. Literal
// values reach the command through the contract only, so they cannot change
// how the runner itself behaves.
func secretEnv(run Run) []corev1.EnvVar {
	var env []corev1.EnvVar
	for _, e := range run.Contract.Env {
		if e.SecretRef == nil {
			continue
		}
		env = append(env, corev1.EnvVar{Name: e.Name, ValueFrom: &corev1.EnvVarSource{
			SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: e.SecretRef.Name},
				Key:                  e.SecretRef.Key,
			},
		}})
	}
	return env
}

func tolerations(in []v1alpha1.Toleration) []corev1.Toleration {
	if len(in) == 0 {
		return nil
	}
	out := make([]corev1.Toleration, len(in))
	for i, t := range in {
		out[i] = corev1.Toleration{
			Key:               t.Key,
			Operator:          corev1.TolerationOperator(t.Operator),
			Value:             t.Value,
			Effect:            corev1.TaintEffect(t.Effect),
			TolerationSeconds: t.TolerationSeconds,
		}
	}
	return out
}

func pullSecrets(names []string) []corev1.LocalObjectReference {
	if len(names) == 0 {
		return nil
	}
	out := make([]corev1.LocalObjectReference, len(names))
	for i, n := range names {
		out[i] = corev1.LocalObjectReference{Name: n}
	}
	return out
}

func cloneOrNil(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	return maps.Clone(m)
}

// RenderJobs renders the Jobs of runs, in order. It
// stops at the first run that cannot be rendered.
func RenderJobs(runs []Run, opts JobOptions) ([]JobObjects, error) {
	out := make([]JobObjects, 0, len(runs))
	err := RenderJobsFunc(runs, opts, func(objs JobObjects) error {
		out = append(out, objs)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// CheckJobs renders the first run of every experiment of runs and reports
// the first error, so a caller that streams with RenderJobsFunc learns
// before printing anything whether the experiments can run as Jobs at all.
func CheckJobs(runs []Run, opts JobOptions) error {
	jr := newJobRenderer(opts)
	seen := map[*v1alpha1.ExperimentSpec]bool{}
	for _, run := range runs {
		if seen[run.Spec] {
			continue
		}
		seen[run.Spec] = true
		if _, err := jr.render(run); err != nil {
			return err
		}
	}
	return nil
}

// RenderJobsFunc renders runs one at a time and hands each run's objects to
// yield, so a caller that sends or prints them never holds more than one: a
// 10,000-run sweep needs the memory of its plan, not of 10,000 Jobs. It
// stops at the first error of rendering or of yield.
func RenderJobsFunc(runs []Run, opts JobOptions, yield func(JobObjects) error) error {
	jr := newJobRenderer(opts)
	for _, run := range runs {
		objs, err := jr.render(run)
		if err != nil {
			return err
		}
		if err := yield(objs); err != nil {
			return err
		}
	}
	return nil
}
