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
	"os"
	"path/filepath"
	"testing"

	"github.com/go-logr/logr"
	"k8s.io/client-go/rest"
	ctrllog "sigs.k8s.io/controller-runtime/pkg/log"

	"github.com/expsync/expsync/internal/kubetest"
	"github.com/expsync/expsync/internal/standin"
)

// The package's control plane, with the ExperimentRepository CRD as `make
// generate` writes it: started by the first test that needs it, stopped
// by TestMain after the last.
var cluster = kubetest.New(filepath.Join("..", "..", "config", "crd", "bases"))

func TestMain(m *testing.M) {
	// The stand-in kubelet runs containers by starting this binary again.
	standin.RunSandbox()
	// controller-runtime's informers log through it; the tests read
	// objects, not logs.
	ctrllog.SetLogger(logr.Discard())
	os.Exit(cluster.Run(m))
}

// apiServer returns a config for the package's API server (kubetest).
func apiServer(t testing.TB) *rest.Config { return cluster.Config(t) }

// controllerManager starts kube-controller-manager next to the API server
// once, and returns the API server's config.
func controllerManager(t testing.TB) *rest.Config { return cluster.ControllerManager(t) }
