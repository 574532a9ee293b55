package envtest_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/standin"
)

// controllerBinary is a running `expsync controller` process, the binary
// the runner image also holds, started as a Deployment's container would
// be: flags only, a kubeconfig, its own state folder.
type controllerBinary struct {
	t          testing.TB
	cmd        *exec.Cmd
	log        *syncBuffer
	done       chan error
	healthAddr string
	metrics    string
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// freeAddr returns a loopback address no one listens on now.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// startControllerBinary runs the built expsync binary's `controller`
// command with args added to the test's (loopback probes and metrics).
func startControllerBinary(t testing.TB, kubeconfig string, args ...string) *controllerBinary {
	t.Helper()
	bin, err := expsyncBinary()
	if err != nil {
		t.Fatal(err)
	}
	p := &controllerBinary{t: t, log: &syncBuffer{}, done: make(chan error, 1), healthAddr: freeAddr(t), metrics: freeAddr(t)}
	p.cmd = exec.Command(bin, append([]string{"controller",
		"--health-addr", p.healthAddr, "--metrics-addr", p.metrics, "--log-level", "debug"}, args...)...)
	p.cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig)
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.done <- p.cmd.Wait() }()
	t.Cleanup(func() {
		if p.cmd.ProcessState == nil {
			_ = p.cmd.Process.Kill()
			<-p.done
		}
		if t.Failed() {
			t.Logf("controller log:\n%s", tail(p.log.String(), 60))
		}
	})
	return p
}

func tail(s string, lines int) string {
	all := strings.Split(s, "\n")
	if len(all) > lines {
		all = all[len(all)-lines:]
	}
	return strings.Join(all, "\n")
}

// get fetches a path of the probe or metrics server.
func (p *controllerBinary) get(addr, path string) (int, string) {
	resp, err := http.Get("http://" + addr + path)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// TestControllerBinaryMakesARepositoryReady runs the real `expsync
// controller` binary against a real API server (envtest, with
// kube-controller-manager's Job controller) and a real Git server: one
// ExperimentRepository whose experiment runs as a Job the stand-in kubelet
// plays becomes Ready (kstatus Current), its result committed back and
// signed; the probes and metrics answer; the binary, killed mid-run and
// started again, adopts the Job and records the result once; SIGTERM
// ends it cleanly.
func TestControllerBinaryMakesARepositoryReady(t *testing.T) {
	release := make(chan struct{})
	var holdOnce sync.Once
	held := make(chan struct{})
	h := newJobsHarness(t, "binary", standin.Hooks{BeforeContainer: func(ctx context.Context, pod *corev1.Pod, container string) {
		if container != "run" {
			return
		}
		holdOnce.Do(func() { close(held) })
		select {
		case <-release:
		case <-ctx.Done():
		}
	}})
	ctx := h.ctx
	scheme := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(scheme)
	_ = v1alpha1.AddToScheme(scheme)
	c, err := client.New(h.cfg, client.Options{Scheme: scheme})
	if err != nil {
		t.Fatal(err)
	}

	// The repository, its Git Secret (Flux's keys) and the attestation key
	// (cosign's keys).
	lab := gitpeer.New(t, &gitpeer.Auth{Username: "lab", Password: "s3cret-git-pass"})
	files := experiment("hello", `mkdir -p out && echo hello > out/greeting.txt && cat data/in.txt >> out/greeting.txt`, "  outputs: [out/greeting.txt]\n")
	lab.Commit("an experiment", files)
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("key-pass"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []*corev1.Secret{
		{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "git"}, Data: map[string][]byte{"username": []byte("lab"), "password": []byte("s3cret-git-pass")}},
		{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "signing-key"}, Data: map[string][]byte{"cosign.key": pair.Private, "cosign.password": []byte("key-pass")}},
	} {
		if err := c.Create(ctx, s); err != nil {
			t.Fatal(err)
		}
	}

	// The controller sees the claim at <store-root>/<namespace>/<claim>,
	// the folder the stand-in kubelet mounts into the pods.
	storeRoot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(storeRoot, h.ns), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(h.storeDir, filepath.Join(storeRoot, h.ns, "store")); err != nil {
		t.Fatal(err)
	}
	kubeconfig := cluster.AdminKubeconfig(t, "expsync-controller")
	stateDir := t.TempDir()
	args := []string{"--state-dir", stateDir, "--store-root", storeRoot, "--runner-image", runnerImage,
		"--watch-namespace", h.ns, "--batch-interval", "200ms", "--progress-interval", "300ms",
		"--enable-leader-election", "--leader-election-namespace", h.ns,
		"--leader-election-lease-duration", "4s", "--leader-election-renew-deadline", "3s", "--leader-election-retry-period", "500ms"}
	p := startControllerBinary(t, kubeconfig, args...)

	obj := &v1alpha1.ExperimentRepository{ObjectMeta: metav1.ObjectMeta{Namespace: h.ns, Name: "lab"},
		Spec: v1alpha1.ExperimentRepositorySpec{
			URL: lab.URL(), AllowHTTP: true, SecretRef: &meta.LocalObjectReference{Name: "git"},
			Refs:        []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true}},
			Interval:    &metav1.Duration{Duration: time.Hour},
			Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
			Execution:   v1alpha1.Execution{ServiceAccountName: "runs"},
			Store:       v1alpha1.Store{ClaimName: "store"},
		}}
	if err := c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	key := client.ObjectKeyFromObject(obj)
	get := func() *v1alpha1.ExperimentRepository {
		o := &v1alpha1.ExperimentRepository{}
		if err := c.Get(ctx, key, o); err != nil {
			t.Fatal(err)
		}
		return o
	}

	// Probes answer once the manager runs.
	h.eventually("/readyz and /healthz", time.Minute, func() bool {
		r, _ := p.get(p.healthAddr, "/readyz")
		l, _ := p.get(p.healthAddr, "/healthz")
		return r == http.StatusOK && l == http.StatusOK
	})

	// The run's pod starts and is held: kill the controller (SIGKILL, no
	// clean-up) and start it again. It adopts the Job: one Job, one pod.
	select {
	case <-held:
	case <-time.After(2 * time.Minute):
		t.Fatalf("no run pod started; status %+v", get().Status)
	}
	jobs := h.jobs()
	if len(jobs) != 1 {
		t.Fatalf("%d Jobs for one run", len(jobs))
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	p = startControllerBinary(t, kubeconfig, args...)
	time.Sleep(2 * time.Second)
	close(release)

	var ready *v1alpha1.ExperimentRepository
	h.eventually("Ready=True (kstatus Current) with the result committed", 4*time.Minute, func() bool {
		o := get()
		if conditions.IsReady(o) && o.Status.ObservedGeneration == o.Generation && len(o.Status.Refs) == 1 &&
			o.Status.Refs[0].Runs.Succeeded == 1 && o.Status.Refs[0].LastResultsCommit != "" {
			ready = o
			return true
		}
		return false
	})
	if conditions.IsReconciling(ready) || conditions.IsStalled(ready) {
		t.Errorf("Ready with Reconciling/Stalled: %+v", ready.Status.Conditions)
	}
	if after := h.jobs(); len(after) > 1 || (len(after) == 1 && after[0].UID != jobs[0].UID) {
		t.Errorf("Jobs after the restart: %d (want the adopted one or none once collected)", len(after))
	}

	// The result is on the branch, signed by the Secret's key.
	clone := lab.Clone()
	matches, _ := filepath.Glob(filepath.Join(clone, "results", "hello", "*", "provenance.intoto.jsonl"))
	if len(matches) != 1 {
		t.Fatalf("results folders with provenance: %v", matches)
	}
	pub, err := attest.NewKey("k8s", priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := attest.VerifyFolder(filepath.Dir(matches[0]), attest.FolderOptions{Keys: attest.Verifiers{pub}, SkipReproductions: true}); err != nil {
		t.Errorf("the committed result does not verify with the Secret's key: %v", err)
	}

	// Metrics: Flux's reconcile series and expsync's per repository.
	code, metrics := p.get(p.metrics, "/metrics")
	if code != http.StatusOK {
		t.Fatalf("/metrics: %d", code)
	}
	for _, want := range []string{
		`gotk_reconcile_duration_seconds_count{kind="ExperimentRepository",name="lab",namespace="binary"}`,
		`expsync_runs{name="lab",namespace="binary",phase="succeeded"} 1`,
		`expsync_runs_finished_total{name="lab",namespace="binary",status="Succeeded"} 1`,
		`expsync_run_duration_seconds_count{name="lab",namespace="binary",status="Succeeded"} 1`,
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	// No secret in the log or the status.
	log := p.log.String()
	status := fmt.Sprintf("%+v", get().Status)
	for _, secret := range []string{"s3cret-git-pass", "key-pass"} {
		if strings.Contains(log, secret) || strings.Contains(status, secret) {
			t.Errorf("the secret %q is in the controller's log or the status", secret)
		}
	}

	// SIGTERM: a clean exit within the grace period.
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Errorf("exit after SIGTERM: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Errorf("still running 40 s after SIGTERM")
	}
}
