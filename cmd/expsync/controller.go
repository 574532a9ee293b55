package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/internal/controller"
)

// controllerOptions is `expsync controller`: the Kubernetes controller,
// its flags those of controller.Options.BindFlags (Flux's client, logger,
// leader election, jitter and rate limiter sets, then expsync's own; the
// chart parses its rendered args with the same FlagSet).
type controllerOptions struct {
	controller.Options
}

// Exec runs the controller until ctx ends: each ExperimentRepository's
// deployment is assembled by internal/deploy with the Job executor
// (executor/kube) and the object's signing key Secret or KMS key.
func (o *controllerOptions) Exec(ctx context.Context) error {
	return controller.Run(ctx, &o.Options, controller.KubeExecutors())
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &controllerOptions{}
		cmd := &cobra.Command{
			Use:   "controller",
			Short: "Reconcile ExperimentRepository objects in a Kubernetes cluster: runs as Jobs, results committed back",
			Long: `Run the Kubernetes controller: a controller-runtime manager that reconciles
ExperimentRepository objects (expsync.dev/v1alpha1). Each object's repository is
polled like a serve entry; new runs become Jobs in the object's namespace,
under the service account it names; their results are collected without
trusting the code under test, signed with the object's key and committed back.

Install the CRD (config/crd/bases) and give the controller's service account
the rules of config/rbac/role.yaml (generated from the +kubebuilder:rbac
markers in internal/controller; the Helm chart renders the same rules):
ExperimentRepositories and their status, Secrets get only (read when used,
never cached or watched), Jobs, pods and events, Kueue Workloads, and a
Lease for leader election.

Mount every store claim at <--store-root>/<namespace>/<claimName>: an object
whose claim is not mounted there is Stalled (reason StoreNotMounted); the
controller never creates that folder. Writable: --state-dir, the store
mounts, and /tmp.

Flags follow Flux's controllers: --kube-api-qps/--kube-api-burst (50/300),
--enable-leader-election, --log-encoding json, --events-addr for Flux's
notification-controller, metrics on --metrics-addr, /healthz and /readyz on
--health-addr.`,
			Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				ctx := c.Context()
				if ctx == nil {
					ctx = context.Background()
				}
				ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
				defer stop()
				return o.Exec(ctx)
			},
		}
		o.BindFlags(cmd.Flags())
		return cmd
	})
}
