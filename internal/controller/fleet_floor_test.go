package controller

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/fluxcd/pkg/runtime/jitter"
	"k8s.io/apimachinery/pkg/types"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/fleetbench"
)

// fleetFloorEnv makes the test binary the fleet benchmark's floor instead
// of running tests: the interval to requeue at.
const fleetFloorEnv = "EXPSYNC_FLEET_FLOOR_INTERVAL"

// runFleetFloor is the least any controller-runtime controller of the
// fleet costs: the manager `expsync controller` builds (same cache
// options, executor/kube's informers of Jobs, pods and events), whose
// Reconcile only reads the object from the cache and requeues after the
// interval. It prints how many objects it reconciled so far.
func runFleetFloor(interval string) int {
	every, err := time.ParseDuration(interval)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	cfg, err := ctrl.GetConfig()
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	o := &Options{MetricsAddr: "0", HealthAddr: "0", RunnerImage: testRunnerImage, StoreRoot: os.TempDir()}
	mgr, err := NewManager(cfg, o, KubeExecutors())
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if _, err := KubeExecutors().New(ctx, mgr, o); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	var mu sync.Mutex
	seen := map[types.NamespacedName]bool{}
	err = ctrl.NewControllerManagedBy(mgr).For(&v1alpha1.ExperimentRepository{}).
		Complete(reconcile.Func(func(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
			obj := &v1alpha1.ExperimentRepository{}
			if err := mgr.GetClient().Get(ctx, req.NamespacedName, obj); err != nil {
				return reconcile.Result{}, nil
			}
			mu.Lock()
			if !seen[req.NamespacedName] {
				seen[req.NamespacedName] = true
				fmt.Printf("reconciled %d\n", len(seen))
			}
			mu.Unlock()
			return reconcile.Result{RequeueAfter: jitter.JitteredIntervalDuration(every)}, nil
		}))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 2
	}
	if err := mgr.Start(ctx); err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	return 0
}

// measureFloor runs the floor on the fleet's first n objects until it has
// reconciled each once, lets one interval pass, and measures one more.
func (f *fleet) measureFloor(kubeconfig string, n int, interval time.Duration) fleetRow {
	b := f.b
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "KUBECONFIG="+kubeconfig, fleetFloorEnv+"="+interval.String())
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	pid := cmd.Process.Pid
	sampler := fleetbench.NewRSSSampler(pid)
	defer sampler.Stop()
	reached := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stdout)
		done := false
		for sc.Scan() {
			if v, ok := strings.CutPrefix(sc.Text(), "reconciled "); ok && !done {
				if k, _ := strconv.Atoi(v); k >= n {
					done = true
					close(reached)
				}
			}
		}
	}()
	select {
	case <-reached:
	case <-time.After(15 * time.Minute):
		b.Fatalf("the floor reconciled fewer than %d objects in 15 minutes", n)
	}
	time.Sleep(interval)
	cpu0, t0 := fleetbench.CPU(pid), time.Now()
	time.Sleep(interval)
	return fleetRow{n: n, steadyRSS: sampler.MedianSince(t0), cpuPerCycle: fleetbench.CPU(pid) - cpu0, peak: fleetbench.StatusKiB(pid, "VmHWM") << 10}
}
