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

Install the CRD (config/crd/bases) and give the controller's service account:
  expsync.dev experimentrepositories: get, list, watch; /status: get, update, patch
  batch jobs: get, list, watch, create, delete; pods, events: get, list, watch
  secrets: get (read when used, never cached or watched)
  events: create, patch; coordination.k8s.io leases: get, create, update (leader election)
  kueue.x-k8s.io workloads: get, list, watch (when Kueue is installed)
Mount every store claim at <--store-root>/<namespace>/<claimName>.

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
