// Package kubetest is test support shared by the packages whose tests talk
// to a real kube-apiserver and etcd (envtest, from the binaries
// hack/envtest/build.sh builds into KUBEBUILDER_ASSETS): one control plane
// per test binary, started by the first test that asks for it, its
// kube-controller-manager when a test needs Jobs to run, and both stopped
// after the last test. It is imported by tests only.
package kubetest

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"

	"github.com/expsync/expsync/internal/standin"
)

// missingAssets says how to get the binaries.
const missingAssets = "KUBEBUILDER_ASSETS is not set: build kube-apiserver and etcd once with " +
	"`make envtest` (hack/envtest/build.sh) and run with " +
	"KUBEBUILDER_ASSETS=$HOME/.cache/expsync/envtest/bin (`make test` and `make test-chart` do both)"

// APIServer is a test binary's control plane. The zero value is not
// usable: make one with New.
type APIServer struct {
	env *envtest.Environment
	// Prepare, when set, adjusts the environment just before it starts
	// (an audit log, say); an error fails the start.
	Prepare func(*envtest.Environment) error
	// StartHint is added to the message of a failed start (where else
	// the environment's files come from).
	StartHint string

	once sync.Once
	cfg  *rest.Config
	err  error

	kcmOnce sync.Once
	kcm     *standin.ControllerManager
	kcmErr  error
}

// New returns the control plane of a test binary, installing the CRDs of
// crdDirs (every folder must exist). Its bounds are well above what a
// start takes on a loaded 2-core CI machine (the control plane took 58 s
// there against a 1-minute bound); each wait ends as soon as the thing is
// ready.
func New(crdDirs ...string) *APIServer {
	return &APIServer{env: &envtest.Environment{
		ControlPlaneStartTimeout: 3 * time.Minute,
		CRDDirectoryPaths:        crdDirs,
		ErrorIfCRDPathMissing:    len(crdDirs) > 0,
		// envtest waits 10 s by default for the CRDs to be served.
		CRDInstallOptions: envtest.CRDInstallOptions{MaxTime: 2 * time.Minute},
	}}
}

// Config returns a config for the API server, starting it on first use.
// Without KUBEBUILDER_ASSETS the test is skipped with the command that
// fixes it — except in CI (CI=true), where a missing API server is a
// failure, never a silent skip.
func (s *APIServer) Config(t testing.TB) *rest.Config {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		if os.Getenv("CI") == "true" {
			t.Fatal(missingAssets)
		}
		t.Skip(missingAssets)
	}
	s.once.Do(func() {
		started := time.Now()
		if s.Prepare != nil {
			if s.err = s.Prepare(s.env); s.err != nil {
				return
			}
		}
		s.cfg, s.err = s.env.Start()
		if s.err == nil {
			fmt.Fprintf(os.Stderr, "envtest: kube-apiserver and etcd started in %s\n", time.Since(started).Round(time.Millisecond))
		}
	})
	if s.err != nil {
		t.Fatalf("start kube-apiserver and etcd from KUBEBUILDER_ASSETS=%s%s: %v", os.Getenv("KUBEBUILDER_ASSETS"), s.StartHint, s.err)
	}
	return rest.CopyConfig(s.cfg)
}

// Env is the environment: started once Config has returned.
func (s *APIServer) Env() *envtest.Environment { return s.env }

// ControllerManager starts kube-controller-manager (the Job controller,
// the garbage collector, the quota controller) next to the API server
// once, and returns the API server's config. It runs until Stop.
func (s *APIServer) ControllerManager(t testing.TB) *rest.Config {
	t.Helper()
	cfg := s.Config(t)
	s.kcmOnce.Do(func() {
		started := time.Now()
		s.kcm, s.kcmErr = standin.StartControllerManager(s.env)
		if s.kcmErr == nil {
			fmt.Fprintf(os.Stderr, "envtest: kube-controller-manager started in %s\n", time.Since(started).Round(time.Millisecond))
		}
	})
	if s.kcmErr != nil {
		t.Fatal(s.kcmErr)
	}
	return cfg
}

// Run runs the tests (m.Run) and then stops what they started; TestMain
// exits with its code. A control plane that does not stop fails the run.
func (s *APIServer) Run(m *testing.M) int {
	code := m.Run()
	if s.kcm != nil {
		_ = s.kcm.Stop()
	}
	if s.cfg != nil {
		if err := s.env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	return code
}

// AdminKubeconfig writes a kubeconfig of a new user name in system:masters,
// for a process the test starts (a controller, a benchmark's peer), and
// returns its path. The API server must be started (Config).
func (s *APIServer) AdminKubeconfig(t testing.TB, name string) string {
	t.Helper()
	user, err := s.env.AddUser(envtest.User{Name: name, Groups: []string{"system:masters"}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	data, err := user.KubeConfig()
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "kubeconfig")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return file
}
