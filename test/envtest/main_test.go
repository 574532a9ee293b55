// Package envtest_test proves against a real kube-apiserver (and etcd),
// started by controller-runtime's envtest from the binaries that
// hack/envtest/build.sh builds, that what expsync renders is accepted.
//
// Run with `make test`, or:
//
//	hack/envtest/build.sh ~/.cache/expsync/envtest
//	KUBEBUILDER_ASSETS=~/.cache/expsync/envtest/bin go test ./test/envtest/
package envtest_test

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/envtest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/expsync/expsync/internal/standin"
)

// One API server for the whole package: started by the first test that
// needs it, stopped by TestMain after the last.
var apiServerOnce struct {
	sync.Once
	env *envtest.Environment
	cfg *rest.Config
	err error
}

func TestMain(m *testing.M) {
	// The stand-in kubelet runs containers by starting this binary again.
	standin.RunSandbox()
	// controller-runtime's informers log through it; the tests read
	// objects, not logs.
	ctrllog.SetLogger(logr.Discard())
	code := m.Run()
	if kcm := controllerManagerOnce.kcm; kcm != nil {
		_ = kcm.Stop()
	}
	if env := apiServerOnce.env; env != nil && apiServerOnce.err == nil {
		if err := env.Stop(); err != nil {
			fmt.Fprintln(os.Stderr, "stop envtest:", err)
			if code == 0 {
				code = 1
			}
		}
	}
	os.Exit(code)
}

// apiServer returns a config for the package's API server, starting it on
// first use. Without KUBEBUILDER_ASSETS the test is skipped with the command
// that fixes it — except in CI (CI=true), where a missing API server is a
// failure, never a silent skip.
func apiServer(t testing.TB) *rest.Config {
	t.Helper()
	if os.Getenv("KUBEBUILDER_ASSETS") == "" {
		const msg = "KUBEBUILDER_ASSETS is not set: build kube-apiserver and etcd once with " +
			"`make envtest` (hack/envtest/build.sh) and run with " +
			"KUBEBUILDER_ASSETS=$HOME/.cache/expsync/envtest/bin (`make test` does both)"
		if os.Getenv("CI") == "true" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	apiServerOnce.Do(func() {
		started := time.Now()
		// Start and CRD bounds well above what they take on a loaded 2-core
		// CI machine (the control plane took 58 s there against a 1-minute
		// bound); each wait ends as soon as the thing is ready.
		apiServerOnce.env = &envtest.Environment{ControlPlaneStartTimeout: 3 * time.Minute,
			CRDInstallOptions: envtest.CRDInstallOptions{MaxTime: 2 * time.Minute},
			// The ExperimentRepository CRD as `make generate` writes it.
			CRDDirectoryPaths: []string{filepath.Join("..", "..", "config", "crd", "bases")}, ErrorIfCRDPathMissing: true}
		apiServerOnce.cfg, apiServerOnce.err = apiServerOnce.env.Start()
		if apiServerOnce.err == nil {
			fmt.Fprintf(os.Stderr, "envtest: kube-apiserver and etcd started in %s\n", time.Since(started).Round(time.Millisecond))
		}
	})
	if apiServerOnce.err != nil {
		t.Fatalf("start kube-apiserver and etcd from KUBEBUILDER_ASSETS=%s: %v", os.Getenv("KUBEBUILDER_ASSETS"), apiServerOnce.err)
	}
	return rest.CopyConfig(apiServerOnce.cfg)
}

// controllerManagerOnce is the package's kube-controller-manager (the Job
// controller, the garbage collector, the quota controller), started by the
// first test that needs Jobs to run.
var controllerManagerOnce struct {
	sync.Once
	kcm *standin.ControllerManager
	err error
}

// controllerManager starts kube-controller-manager next to the API server
// once, and returns the API server's config.
func controllerManager(t testing.TB) *rest.Config {
	t.Helper()
	cfg := apiServer(t)
	controllerManagerOnce.Do(func() {
		started := time.Now()
		controllerManagerOnce.kcm, controllerManagerOnce.err = standin.StartControllerManager(apiServerOnce.env)
		if controllerManagerOnce.err == nil {
			fmt.Fprintf(os.Stderr, "envtest: kube-controller-manager started in %s\n", time.Since(started).Round(time.Millisecond))
		}
	})
	if controllerManagerOnce.err != nil {
		t.Fatal(controllerManagerOnce.err)
	}
	return cfg
}
