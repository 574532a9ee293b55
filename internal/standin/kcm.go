package standin

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/envtest"
)

// ControllerManagerControllers are the controllers a Job's life needs: the
// Job controller (pods from the template, podFailurePolicy, backoff,
// conditions), the garbage collector (owner references: a deleted Job's
// pods, a deleted ExperimentRepository's Jobs), the quota controller (a
// ResourceQuota's usage, without which admission refuses everything it
// covers), the service-account controller (each namespace's default
// account) and the namespace controller (a deleted namespace's objects).
var ControllerManagerControllers = []string{
	"job-controller", "garbage-collector-controller", "resourcequota-controller", "serviceaccount-controller", "namespace-controller",
}

// ControllerManager is a kube-controller-manager process next to an envtest
// API server: real Job and garbage-collection semantics instead of a
// stand-in's guess of them.
type ControllerManager struct {
	cmd  *exec.Cmd
	dir  string
	done chan struct{}
	log  *lockedBuffer
}

// StartControllerManager starts the binary found in KUBEBUILDER_ASSETS
// (hack/envtest/build.sh builds it) against env's API server, as a
// system:masters user.
func StartControllerManager(env *envtest.Environment) (*ControllerManager, error) {
	assets := os.Getenv("KUBEBUILDER_ASSETS")
	bin := filepath.Join(assets, "kube-controller-manager")
	if _, err := os.Stat(bin); err != nil {
		return nil, fmt.Errorf("kube-controller-manager is not in KUBEBUILDER_ASSETS=%s: build it with `make envtest` (hack/envtest/build.sh): %w", assets, err)
	}
	user, err := env.AddUser(envtest.User{Name: "standin-kcm", Groups: []string{"system:masters"}}, nil)
	if err != nil {
		return nil, fmt.Errorf("kube-controller-manager's user: %w", err)
	}
	kubeconfig, err := user.KubeConfig()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "standin-kcm-")
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "kubeconfig"), kubeconfig, 0o600); err != nil {
		return nil, err
	}
	log := &lockedBuffer{}
	cmd := exec.Command(bin,
		"--kubeconfig", filepath.Join(dir, "kubeconfig"),
		"--controllers", join(ControllerManagerControllers),
		"--leader-elect=false",
		"--secure-port=0",
		"--use-service-account-credentials=false",
		// Tests want reactions in seconds, not the production defaults.
		"--concurrent-job-syncs=10",
		"--resource-quota-sync-period=2s",
		"--v=1",
	)
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start kube-controller-manager: %w", err)
	}
	cm := &ControllerManager{cmd: cmd, dir: dir, done: make(chan struct{}), log: log}
	go func() {
		_ = cmd.Wait()
		close(cm.done)
	}()
	// It serves nothing (--secure-port=0): wait until it logs that the
	// garbage collector, the last of its controllers to be ready, synced.
	deadline := time.Now().Add(time.Minute)
	for !bytes.Contains(log.Bytes(), []byte("all resource monitors have synced")) {
		select {
		case <-cm.done:
			return nil, fmt.Errorf("kube-controller-manager exited at start:\n%s", tail(log.Bytes(), 4096))
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			_ = cm.Stop()
			return nil, fmt.Errorf("kube-controller-manager did not start its controllers within a minute:\n%s", tail(log.Bytes(), 4096))
		}
	}
	return cm, nil
}

// Stop ends the process and removes its files.
func (cm *ControllerManager) Stop() error {
	_ = syscall.Kill(-cm.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-cm.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-cm.cmd.Process.Pid, syscall.SIGKILL)
		<-cm.done
	}
	return os.RemoveAll(cm.dir)
}

// Log returns the end of the process's log, for a failing test.
func (cm *ControllerManager) Log() string { return string(tail(cm.log.Bytes(), 8192)) }

// WaitGone waits until ctx ends or the process exits (it should not).
func (cm *ControllerManager) WaitGone(ctx context.Context) error {
	select {
	case <-cm.done:
		return errors.New("kube-controller-manager exited")
	case <-ctx.Done():
		return nil
	}
}

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]byte(nil), b.buf.Bytes()...)
}

func tail(b []byte, n int) []byte {
	if len(b) > n {
		return b[len(b)-n:]
	}
	return b
}

func join(list []string) string {
	var out bytes.Buffer
	for i, s := range list {
		if i > 0 {
			out.WriteByte(',')
		}
		out.WriteString(s)
	}
	return out.String()
}
