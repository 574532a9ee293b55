package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/internal/controller"
)

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &controller.Options{}
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
				return controller.Run(ctx, o, controller.KubeExecutors())
			},
		}
		o.BindFlags(cmd.Flags())
		return cmd
	})
}
