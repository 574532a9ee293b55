package controller

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/leaderelection"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/client"
)

// TestCleanShutdownLogsNoError: `expsync controller` with leader election
// stopped by SIGTERM (its context cancelled) releases its lease and ends
// without an error line: controller-runtime logs the elector's "leader
// election lost" at error level once the stop sequence is engaged, which
// operators' alerts on error lines would page for at every rollout.
func TestCleanShutdownLogsNoError(t *testing.T) {
	cfg := apiServer(t)
	c, err := client.New(cfg, client.Options{Scheme: NewScheme()})
	if err != nil {
		t.Fatal(err)
	}
	const ns = "clean-shutdown"
	newNamespace(t, c, ns)
	logs := &logLines{}
	o := &Options{Concurrent: 1, restartable: true, logger: logs.logger(), MetricsAddr: "0", HealthAddr: "0", Namespace: ns,
		LeaderElection: leaderelection.Options{Enable: true, ReleaseOnCancel: true,
			LeaseDuration: 15 * time.Second, RenewDeadline: 10 * time.Second, RetryPeriod: 2 * time.Second},
		LeaderElectionNamespace: ns, Settings: Settings{StateDir: t.TempDir()}}
	mgr, err := NewManager(cfg, o, ExecutorSetup{})
	if err != nil {
		t.Fatal(err)
	}
	execs := &hostExecutors{t: t, root: t.TempDir(), ex: map[string]*hostExecutor{}}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	if _, err := Setup(ctx, mgr, o, ExecutorSetup{New: func(context.Context, ctrl.Manager, *Options) (ExecutorFactory, error) {
		return execs.factory, nil
	}}); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- mgr.Start(ctx) }()
	select {
	case <-mgr.Elected():
	case err := <-done:
		t.Fatalf("manager ended before it was elected: %v", err)
	case <-time.After(2 * time.Minute):
		t.Fatal("not elected within 2 minutes")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("clean shutdown returned %v", err)
		}
	case <-time.After(2 * time.Minute):
		t.Fatal("the manager did not stop within 2 minutes")
	}
	if n := logs.errorCount(); n != 0 {
		t.Errorf("%d error lines on a clean shutdown:\n%s", n, logs)
	}
	if !strings.Contains(logs.String(), "(shutting down)") {
		t.Errorf("no line says the elector stopped at shutdown:\n%s", logs)
	}
}
