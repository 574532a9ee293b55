package standin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	toolscache "k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/retry"
	"k8s.io/utils/ptr"

	"github.com/expsync/expsync/render"
)

// Kubelet plays the pods expsync's Jobs make, on this machine: each
// container runs in a sandbox built from the pod's spec (see sandbox.go),
// and the pod's status is written as a kubelet writes it — container
// states with exit codes, termination messages and image IDs, the pod's
// phase. With ControllerManager's Job controller this is a node for Jobs,
// without a container runtime: images are the host's programs (the runner
// image is the expsync binary the test built; any other image is the
// host's /usr and /bin).
type Kubelet struct {
	opts KubeletOptions

	mu      sync.Mutex
	playing map[types.UID]*playedPod
	lost    map[types.UID]bool
}

// KubeletOptions configure a Kubelet.
type KubeletOptions struct {
	Client kubernetes.Interface
	// Runner is the expsync binary of the runner image (RunnerImage).
	Runner      string
	RunnerImage string
	// Claims maps a PersistentVolumeClaim (namespace, name) to the host
	// folder holding its volume.
	Claims func(namespace, name string) (string, bool)
	// Dir holds the pods' emptyDirs and logs.
	Dir string
	// Namespaces limits the pods played to these namespaces (all when
	// empty): several tests can share one API server.
	Namespaces []string

	// Hooks, all optional, let a test play a hostile pod or a failing
	// node. They run on the kubelet's goroutines.
	Hooks Hooks
}

// Hooks change what the Kubelet does for one pod.
type Hooks struct {
	// ImageID returns the image ID reported for a container instead of
	// the one its image reference pins ("" keeps it).
	ImageID func(pod *corev1.Pod, container string) string
	// BeforeContainer runs before a container starts; it may block (a test
	// holding a run mid-way) until ctx ends (the pod is deleted).
	BeforeContainer func(ctx context.Context, pod *corev1.Pod, container string)
	// AfterContainer runs when a container exited, before its status is
	// written: termination is the host path of its termination message,
	// mounts the host folders of its volume mounts by mount path (a pod's
	// process that escaped its group could change them now).
	AfterContainer func(pod *corev1.Pod, container string, termination string, mounts map[string]string)
}

// NewKubelet returns a Kubelet; Start runs it.
func NewKubelet(opts KubeletOptions) *Kubelet {
	return &Kubelet{opts: opts, playing: map[types.UID]*playedPod{}, lost: map[types.UID]bool{}}
}

// playedPod is a pod whose containers run here.
type playedPod struct {
	cancel context.CancelFunc
	done   chan struct{}
	// proc is the running container's process group leader (0 between
	// containers).
	mu   sync.Mutex
	proc *os.Process
}

// Start plays the pods of expsync's Jobs until ctx ends.
func (k *Kubelet) Start(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(k.opts.Client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.LabelSelector = render.LabelManagedBy + "=" + render.ManagedBy
		}))
	inf := factory.Core().V1().Pods().Informer()
	if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { k.sync(ctx, obj) },
		UpdateFunc: func(_, obj any) { k.sync(ctx, obj) },
	}); err != nil {
		return err
	}
	factory.Start(ctx.Done())
	for _, ok := range factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return errors.New("kubelet: pod informer did not sync")
		}
	}
	go func() {
		<-ctx.Done()
		factory.Shutdown()
		k.mu.Lock()
		pods := make([]*playedPod, 0, len(k.playing))
		for _, p := range k.playing {
			pods = append(pods, p)
		}
		k.mu.Unlock()
		for _, p := range pods {
			p.kill(syscall.SIGKILL)
			<-p.done
		}
	}()
	return nil
}

func (k *Kubelet) mine(pod *corev1.Pod) bool {
	if len(k.opts.Namespaces) == 0 {
		return true
	}
	for _, ns := range k.opts.Namespaces {
		if ns == pod.Namespace {
			return true
		}
	}
	return false
}

// sync starts a new pod, or ends one being deleted.
func (k *Kubelet) sync(ctx context.Context, obj any) {
	pod, ok := obj.(*corev1.Pod)
	if !ok || !k.mine(pod) {
		return
	}
	k.mu.Lock()
	p, playing := k.playing[pod.UID]
	lost := k.lost[pod.UID]
	k.mu.Unlock()
	switch {
	case lost:
		return
	case pod.DeletionTimestamp != nil:
		go k.terminate(ctx, pod.DeepCopy(), p)
	case !playing && !terminal(pod) && pod.Status.StartTime == nil:
		k.start(ctx, pod.DeepCopy())
	}
}

func terminal(pod *corev1.Pod) bool {
	return pod.Status.Phase == corev1.PodSucceeded || pod.Status.Phase == corev1.PodFailed
}

func (k *Kubelet) start(ctx context.Context, pod *corev1.Pod) {
	pctx, cancel := context.WithCancel(ctx)
	p := &playedPod{cancel: cancel, done: make(chan struct{})}
	k.mu.Lock()
	if _, dup := k.playing[pod.UID]; dup {
		k.mu.Unlock()
		cancel()
		return
	}
	k.playing[pod.UID] = p
	k.mu.Unlock()
	go func() {
		defer close(p.done)
		defer cancel()
		k.play(pctx, pod, p)
	}()
}

// LoseNode stops playing a pod as a node that died would: its processes
// are killed and nothing is written about it any more (the test plays the
// pod garbage collector that notices).
func (k *Kubelet) LoseNode(uid types.UID) {
	k.mu.Lock()
	k.lost[uid] = true
	p := k.playing[uid]
	k.mu.Unlock()
	if p != nil {
		p.cancel()
		p.kill(syscall.SIGKILL)
		<-p.done
	}
}

// terminate ends a pod being deleted: its container is stopped (SIGTERM,
// then SIGKILL after the grace period, at most 2 s here), its status made
// terminal, and the pod removed for good (the kubelet's final delete).
func (k *Kubelet) terminate(ctx context.Context, pod *corev1.Pod, p *playedPod) {
	if p != nil {
		p.kill(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(2 * time.Second):
			p.kill(syscall.SIGKILL)
			p.cancel()
			<-p.done
		}
	}
	k.mu.Lock()
	lost := k.lost[pod.UID]
	k.mu.Unlock()
	if lost {
		return
	}
	// Whatever did not end by itself was killed: the pod is Failed.
	k.status(ctx, pod, func(s *corev1.PodStatus) {
		now := metav1.Now()
		for _, list := range [][]corev1.ContainerStatus{s.InitContainerStatuses, s.ContainerStatuses} {
			for i := range list {
				if list[i].State.Terminated == nil {
					list[i].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
						ExitCode: 137, Reason: "ContainerStatusUnknown", Message: "the pod was deleted", FinishedAt: now}}
				}
			}
		}
		s.Phase = corev1.PodFailed
	})
	_ = k.opts.Client.CoreV1().Pods(pod.Namespace).Delete(ctx, pod.Name, metav1.DeleteOptions{
		GracePeriodSeconds: ptr.To[int64](0), Preconditions: &metav1.Preconditions{UID: &pod.UID}})
}

// kill signals the running container; between containers (or in a hook)
// it stops the pod from going on.
func (p *playedPod) kill(sig syscall.Signal) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.proc != nil {
		_ = syscall.Kill(-p.proc.Pid, sig)
		return
	}
	p.cancel()
}

// play runs the pod's init containers, then its container, writing the
// status after each step.
func (k *Kubelet) play(ctx context.Context, pod *corev1.Pod, p *playedPod) {
	dir := filepath.Join(k.opts.Dir, string(pod.UID))
	vols, err := k.volumes(pod, dir)
	if err != nil {
		k.waiting(ctx, pod, "ContainerCreating", err.Error())
		return
	}
	now := metav1.Now()
	k.status(ctx, pod, func(s *corev1.PodStatus) {
		s.Phase, s.StartTime = corev1.PodPending, &now
		s.InitContainerStatuses = initialStatuses(pod.Spec.InitContainers, "PodInitializing")
		s.ContainerStatuses = initialStatuses(pod.Spec.Containers, "PodInitializing")
	})
	for i, c := range pod.Spec.InitContainers {
		term, ok := k.runContainer(ctx, pod, p, c, dir, vols, func(s *corev1.PodStatus) *corev1.ContainerStatus {
			return &s.InitContainerStatuses[i]
		})
		if !ok {
			return
		}
		if term.ExitCode != 0 {
			k.status(ctx, pod, func(s *corev1.PodStatus) { s.Phase = corev1.PodFailed })
			return
		}
	}
	k.status(ctx, pod, func(s *corev1.PodStatus) { s.Phase = corev1.PodRunning })
	failed := false
	for i, c := range pod.Spec.Containers {
		term, ok := k.runContainer(ctx, pod, p, c, dir, vols, func(s *corev1.PodStatus) *corev1.ContainerStatus {
			return &s.ContainerStatuses[i]
		})
		if !ok {
			return
		}
		failed = failed || term.ExitCode != 0
	}
	phase := corev1.PodSucceeded
	if failed {
		phase = corev1.PodFailed
	}
	k.status(ctx, pod, func(s *corev1.PodStatus) { s.Phase = phase })
}

func initialStatuses(cs []corev1.Container, reason string) []corev1.ContainerStatus {
	out := make([]corev1.ContainerStatus, len(cs))
	for i, c := range cs {
		out[i] = corev1.ContainerStatus{Name: c.Name, Image: c.Image,
			State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason}}}
	}
	return out
}

// volumes makes the host folder of every volume of the pod.
func (k *Kubelet) volumes(pod *corev1.Pod, dir string) (map[string]string, error) {
	vols := map[string]string{}
	for _, v := range pod.Spec.Volumes {
		host := filepath.Join(dir, "volumes", v.Name)
		switch {
		case v.EmptyDir != nil:
			// As the kubelet makes them: writable by the pod's user.
			if err := os.MkdirAll(host, 0o777); err != nil {
				return nil, err
			}
			if err := os.Chmod(host, 0o777); err != nil {
				return nil, err
			}
		case v.DownwardAPI != nil:
			if err := os.MkdirAll(host, 0o755); err != nil {
				return nil, err
			}
			for _, item := range v.DownwardAPI.Items {
				value, err := fieldValue(pod, item.FieldRef)
				if err != nil {
					return nil, err
				}
				mode := os.FileMode(ptr.Deref(item.Mode, ptr.Deref(v.DownwardAPI.DefaultMode, 0o644)))
				if err := os.WriteFile(filepath.Join(host, item.Path), []byte(value), mode); err != nil {
					return nil, err
				}
			}
		case v.PersistentVolumeClaim != nil:
			claim, ok := k.opts.Claims(pod.Namespace, v.PersistentVolumeClaim.ClaimName)
			if !ok {
				return nil, fmt.Errorf("persistentvolumeclaim %q not found", v.PersistentVolumeClaim.ClaimName)
			}
			host = claim
		default:
			return nil, fmt.Errorf("volume %s: the stand-in kubelet mounts emptyDir, downwardAPI and persistentVolumeClaim volumes only", v.Name)
		}
		vols[v.Name] = host
	}
	return vols, nil
}

var annotationRef = regexp.MustCompile(`^metadata\.annotations\['([^']+)'\]$`)

func fieldValue(pod *corev1.Pod, ref *corev1.ObjectFieldSelector) (string, error) {
	if ref == nil {
		return "", errors.New("downward API item without fieldRef")
	}
	if m := annotationRef.FindStringSubmatch(ref.FieldPath); m != nil {
		return pod.Annotations[m[1]], nil
	}
	switch ref.FieldPath {
	case "metadata.name":
		return pod.Name, nil
	case "metadata.namespace":
		return pod.Namespace, nil
	}
	return "", fmt.Errorf("downward API field %s is not played", ref.FieldPath)
}

// runContainer runs one container to its end; ok is false when the pod
// stopped being played (deleted, its node lost, or a container that cannot
// start).
func (k *Kubelet) runContainer(ctx context.Context, pod *corev1.Pod, p *playedPod, c corev1.Container, dir string,
	vols map[string]string, slot func(*corev1.PodStatus) *corev1.ContainerStatus) (*corev1.ContainerStateTerminated, bool) {
	env, err := k.env(ctx, pod, c)
	if err != nil {
		k.status(ctx, pod, func(s *corev1.PodStatus) {
			slot(s).State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerConfigError", Message: err.Error()}}
		})
		return nil, false
	}
	spec, mounts, err := k.sandbox(pod, c, dir, vols, env)
	if err != nil {
		k.status(ctx, pod, func(s *corev1.PodStatus) {
			slot(s).State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CreateContainerError", Message: err.Error()}}
		})
		return nil, false
	}
	if h := k.opts.Hooks.BeforeContainer; h != nil {
		h(ctx, pod, c.Name)
	}
	if ctx.Err() != nil {
		return nil, false
	}
	cmd, err := sandboxCommand(spec)
	if err != nil {
		return nil, false
	}
	logFile, err := os.Create(filepath.Join(dir, c.Name+".log"))
	if err != nil {
		return nil, false
	}
	defer logFile.Close()
	cmd.Stdout, cmd.Stderr = logFile, logFile
	started := metav1.Now()
	p.mu.Lock()
	err = cmd.Start()
	if err == nil {
		p.proc = cmd.Process
	}
	p.mu.Unlock()
	if err != nil {
		return nil, false
	}
	imageID := k.imageID(pod, c)
	containerID := "standin://" + string(pod.UID) + "/" + c.Name
	k.status(ctx, pod, func(s *corev1.PodStatus) {
		st := slot(s)
		st.ImageID, st.ContainerID, st.Started = imageID, containerID, ptr.To(true)
		st.State = corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: started}}
	})
	waitErr := cmd.Wait()
	p.mu.Lock()
	p.proc = nil
	p.mu.Unlock()
	code := exitCode(cmd, waitErr)
	finishedAt := metav1.Now()
	termPath := spec.Files[0].Source
	if h := k.opts.Hooks.AfterContainer; h != nil {
		h(pod, c.Name, termPath, mounts)
	}
	k.mu.Lock()
	lost := k.lost[pod.UID]
	k.mu.Unlock()
	if lost {
		return nil, false
	}
	term := &corev1.ContainerStateTerminated{ExitCode: int32(code), StartedAt: started, FinishedAt: finishedAt,
		ContainerID: containerID, Message: terminationMessage(termPath, logFile.Name(), c, code)}
	term.Reason = "Completed"
	if code != 0 {
		term.Reason = "Error"
	}
	k.status(ctx, pod, func(s *corev1.PodStatus) {
		st := slot(s)
		st.Ready, st.Started = false, ptr.To(false)
		st.State = corev1.ContainerState{Terminated: term}
	})
	return term, ctx.Err() == nil || code != 0
}

func exitCode(cmd *exec.Cmd, err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			return 128 + int(ws.Signal())
		}
		return ee.ExitCode()
	}
	if err != nil {
		return 128
	}
	return cmd.ProcessState.ExitCode()
}

// terminationMessage is what the kubelet reports: the file, at most 4096
// bytes, or with FallbackToLogsOnError the end of the log of a failed
// container that wrote none.
func terminationMessage(path, logPath string, c corev1.Container, code int) string {
	msg, _ := readAtMost(path, 4096)
	if len(msg) == 0 && code != 0 && c.TerminationMessagePolicy == corev1.TerminationMessageFallbackToLogsOnError {
		log, _ := os.ReadFile(logPath)
		if len(log) > 2048 {
			log = log[len(log)-2048:]
		}
		msg = log
	}
	return string(msg)
}

func readAtMost(path string, n int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, n))
}

// imageID is what a container runtime reports for a digest-pinned image:
// the repository and the digest it pulled.
func (k *Kubelet) imageID(pod *corev1.Pod, c corev1.Container) string {
	if h := k.opts.Hooks.ImageID; h != nil {
		if id := h(pod, c.Name); id != "" {
			return id
		}
	}
	repo, digest, ok := strings.Cut(c.Image, "@")
	if !ok {
		return "sha256:" + strings.Repeat("0", 64) // a tag: the runtime's own image ID
	}
	if i := strings.LastIndex(repo, ":"); i > strings.LastIndex(repo, "/") {
		repo = repo[:i] // the tag is not part of the image ID
	}
	if !strings.Contains(strings.SplitN(repo, "/", 2)[0], ".") {
		repo = "docker.io/" + repo
	}
	return repo + "@" + digest
}

// env is the container's environment: the image's PATH, the declared
// variables, Secrets resolved from the API as the kubelet does.
func (k *Kubelet) env(ctx context.Context, pod *corev1.Pod, c corev1.Container) ([]string, error) {
	env := []string{"PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOSTNAME=" + pod.Name}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env = append(env, e.Name+"="+e.Value)
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			secret, err := k.opts.Client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("secret %q not found", ref.Name)
			}
			v, ok := secret.Data[ref.Key]
			if !ok {
				return nil, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
			}
			env = append(env, e.Name+"="+string(v))
		default:
			return nil, fmt.Errorf("variable %s: only values and secretKeyRef are played", e.Name)
		}
	}
	return env, nil
}

// sandbox translates a container of the pod into a sandboxSpec; mounts maps
// each mount path to its host folder.
func (k *Kubelet) sandbox(pod *corev1.Pod, c corev1.Container, dir string, vols map[string]string, env []string) (sandboxSpec, map[string]string, error) {
	root := filepath.Join(dir, "roots", c.Name)
	if err := os.MkdirAll(root, 0o755); err != nil {
		return sandboxSpec{}, nil, err
	}
	spec := sandboxSpec{Root: root, Argv: append(append([]string{}, c.Command...), c.Args...), Env: env, WorkingDir: c.WorkingDir}
	if c.Image == k.opts.RunnerImage {
		// The runner image: a static expsync and nothing else.
		spec.Image = []bindMount{{Source: k.opts.Runner, Target: render.DefaultRunnerBinary}}
	} else {
		// Any other image is the host's programs, read-only.
		for _, d := range []string{"/usr", "/bin", "/sbin", "/lib", "/lib64"} {
			if _, err := os.Stat(d); err == nil {
				spec.Image = append(spec.Image, bindMount{Source: d})
			}
		}
	}
	mounts := map[string]string{}
	for _, m := range c.VolumeMounts {
		host, ok := vols[m.Name]
		if !ok {
			return sandboxSpec{}, nil, fmt.Errorf("volume mount %s: no volume %s", m.MountPath, m.Name)
		}
		if m.SubPath != "" {
			sub, err := subPath(host, m.SubPath)
			if err != nil {
				return sandboxSpec{}, nil, err
			}
			host = sub
		}
		mounts[m.MountPath] = host
		spec.Mounts = append(spec.Mounts, bindMount{Source: host, Target: m.MountPath, ReadOnly: m.ReadOnly})
	}
	// The termination message: a file the container may write, bound at
	// its path (the first of Files, see runContainer).
	term := filepath.Join(dir, c.Name+".termination")
	if err := os.WriteFile(term, nil, 0o666); err != nil {
		return sandboxSpec{}, nil, err
	}
	_ = os.Chmod(term, 0o666)
	path := c.TerminationMessagePath
	if path == "" {
		path = corev1.TerminationMessagePathDefault
	}
	spec.Files = []bindMount{{Source: term, Target: path}}
	if sc := pod.Spec.SecurityContext; sc != nil {
		spec.UID, spec.GID = int(ptr.Deref(sc.RunAsUser, 0)), int(ptr.Deref(sc.RunAsGroup, 0))
	}
	if sc := c.SecurityContext; sc != nil && sc.RunAsUser != nil {
		spec.UID = int(*sc.RunAsUser)
	}
	return spec, mounts, nil
}

// subPath resolves a volume's sub-path as the kubelet does: made when
// missing, and refused when a symlink leads it out of the volume.
func subPath(volume, sub string) (string, error) {
	root, err := os.OpenRoot(volume)
	if err != nil {
		return "", err
	}
	defer root.Close()
	if err := root.MkdirAll(sub, 0o750); err != nil {
		return "", fmt.Errorf("subPath %s of volume %s: %w", sub, volume, err)
	}
	host := filepath.Join(volume, sub)
	real, err := filepath.EvalSymlinks(host)
	if err != nil {
		return "", err
	}
	base, err := filepath.EvalSymlinks(volume)
	if err != nil {
		return "", err
	}
	if real != base && !strings.HasPrefix(real, base+string(filepath.Separator)) {
		return "", fmt.Errorf("subPath %s leads out of its volume", sub)
	}
	return real, nil
}

// waiting marks every container of a pod that cannot start.
func (k *Kubelet) waiting(ctx context.Context, pod *corev1.Pod, reason, message string) {
	k.status(ctx, pod, func(s *corev1.PodStatus) {
		s.Phase = corev1.PodPending
		s.InitContainerStatuses = initialStatuses(pod.Spec.InitContainers, reason)
		s.ContainerStatuses = initialStatuses(pod.Spec.Containers, reason)
		for i := range s.InitContainerStatuses {
			s.InitContainerStatuses[i].State.Waiting.Message = message
		}
	})
}

// status changes the pod's status as the kubelet owns it (phase, start
// time, container statuses), keeping the conditions others set (the
// DisruptionTarget of an eviction).
func (k *Kubelet) status(ctx context.Context, pod *corev1.Pod, change func(*corev1.PodStatus)) {
	pods := k.opts.Client.CoreV1().Pods(pod.Namespace)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := pods.Get(ctx, pod.Name, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.UID != pod.UID || terminal(cur) {
			return nil
		}
		st := cur.Status.DeepCopy()
		if len(st.InitContainerStatuses) != len(cur.Spec.InitContainers) || len(st.ContainerStatuses) != len(cur.Spec.Containers) {
			st.InitContainerStatuses = initialStatuses(cur.Spec.InitContainers, "PodInitializing")
			st.ContainerStatuses = initialStatuses(cur.Spec.Containers, "PodInitializing")
		}
		change(st)
		cur.Status = *st
		_, err = pods.UpdateStatus(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil {
		fmt.Fprintf(os.Stderr, "stand-in kubelet: status of pod %s/%s: %v\n", pod.Namespace, pod.Name, err)
	}
}

// Logs returns a container's output, for a failing test.
func (k *Kubelet) Logs(pod *corev1.Pod, container string) string {
	b, _ := os.ReadFile(filepath.Join(k.opts.Dir, string(pod.UID), container+".log"))
	return string(bytes.TrimSpace(b))
}
