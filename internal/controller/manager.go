package controller

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	runtimeclient "github.com/fluxcd/pkg/runtime/client"
	helper "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/leaderelection"
	"github.com/fluxcd/pkg/runtime/logger"
	"github.com/fluxcd/pkg/runtime/metrics"
	"github.com/fluxcd/pkg/runtime/probes"
	"github.com/go-logr/logr"
	"github.com/spf13/pflag"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	ctrlcache "sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	ctrlcfg "sigs.k8s.io/controller-runtime/pkg/config"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"

	"github.com/expsync/expsync/api/v1alpha1"
)

// ControllerName is the controller's name in events, field managers and
// the leader election lock.
const ControllerName = "expsync-controller"

// Options are `expsync controller`'s flags: Flux's client, logger, leader
// election and jitter options, plus expsync's own.
type Options struct {
	Client         runtimeclient.Options
	Log            logger.Options
	LeaderElection leaderelection.Options
	Jitter         jitter.IntervalOptions
	RateLimiter    helper.RateLimiterOptions

	MetricsAddr string
	HealthAddr  string
	EventsAddr  string
	Concurrent  int
	// Namespace restricts the controller to one namespace ("" for all).
	Namespace string
	// LeaderElectionNamespace holds the lock (default: RUNTIME_NAMESPACE,
	// then the pod's namespace).
	LeaderElectionNamespace string

	Settings Settings
	// RunnerImage, MaxInFlight and StoreRoot are the executor's defaults
	// (see ExecutorSetup).
	RunnerImage string
	MaxInFlight int
	StoreRoot   string

	// restartable lets a test start the controller again in one process
	// (controller-runtime refuses a second controller of the same name).
	restartable bool
	// logger replaces ctrl.Log as the manager's logger (tests).
	logger *logr.Logger
}

func (o *Options) managerLogger() logr.Logger {
	if o.logger != nil {
		return *o.logger
	}
	return ctrl.Log
}

// BindFlags adds the flags to fs with Flux's defaults (--kube-api-qps 50,
// --kube-api-burst 300, JSON logs).
func (o *Options) BindFlags(fs *pflag.FlagSet) {
	o.Client.BindFlags(fs)
	o.Log.BindFlags(fs)
	o.LeaderElection.BindFlags(fs)
	o.Jitter.BindFlags(fs)
	o.RateLimiter.BindFlags(fs)
	fs.StringVar(&o.MetricsAddr, "metrics-addr", envOr("METRICS_ADDR", ":8080"), "address of the Prometheus metrics endpoint")
	fs.StringVar(&o.HealthAddr, "health-addr", ":9440", "address of the health and readiness probes (/healthz, /readyz)")
	fs.StringVar(&o.EventsAddr, "events-addr", envOr("EVENTS_ADDR", ""), "address of Flux's notification-controller events endpoint (for example http://notification-controller.flux-system.svc.cluster.local./); empty: Kubernetes events only")
	fs.IntVar(&o.Concurrent, "concurrent", 4, "ExperimentRepositories reconciled at once (their runs execute in the background regardless)")
	fs.StringVar(&o.Namespace, "watch-namespace", "", "reconcile only the ExperimentRepositories of this namespace (default: all)")
	fs.StringVar(&o.LeaderElectionNamespace, "leader-election-namespace", envOr("RUNTIME_NAMESPACE", ""), "namespace of the leader election lock (default: the controller's own)")
	fs.StringVar(&o.Settings.StateDir, "state-dir", "/var/lib/expsync/state", "folder of the repositories' Git caches (an emptyDir is enough: it is refilled after a restart)")
	fs.StringVar(&o.StoreRoot, "store-root", "/var/lib/expsync/stores", "where the controller sees the repositories' store claims: <store-root>/<namespace>/<claimName>")
	fs.StringVar(&o.RunnerImage, "runner-image", os.Getenv("EXPSYNC_RUNNER_IMAGE"), "digest-pinned image of the runner the pods' init container runs, for repositories that name none")
	fs.IntVar(&o.MaxInFlight, "max-in-flight", 100, "Jobs a repository may have at once, when its spec names no execution.maxInFlight")
	fs.StringVar(&o.Settings.BuilderID, "builder-id", "https://expsync.dev/builder/kubernetes", "builder ID of the statements, for repositories that name none (verification binds builder IDs to keys)")
	fs.DurationVar(&o.Settings.BatchInterval, "batch-interval", 10*time.Second, "how often finished runs are committed")
	fs.DurationVar(&o.Settings.SecretsTTL, "secrets-ttl", 5*time.Minute, "how long a read of the Secrets an ExperimentRepository names (Git credentials, commit signing, verification, attestation and trusted keys) is used before they are read again (a spec change or reconcile.fluxcd.io/requestedAt reads them at once; a failing poll does not); one GET per object per interval would exceed --kube-api-qps for large fleets")
	fs.DurationVar(&o.Settings.ProgressInterval, "progress-interval", 10*time.Second, "least time between two status updates caused by runs finishing")
}

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

// ExecutorSetup connects the executor to the manager before it starts
// (executor/kube registers its Job and Pod informers) and returns the
// per-repository factory. Cache adds the executor's informer options
// (label selectors, transforms) to the manager's cache.
type ExecutorSetup struct {
	Cache func() map[client.Object]ctrlcache.ByObject
	New   func(ctx context.Context, mgr ctrl.Manager, o *Options) (ExecutorFactory, error)
}

// NewScheme knows the built-in kinds and ExperimentRepository.
func NewScheme() *runtime.Scheme {
	s := runtime.NewScheme()
	_ = clientgoscheme.AddToScheme(s)
	_ = v1alpha1.AddToScheme(s)
	return s
}

// NewManager builds the controller-runtime manager with Flux's options:
// Secrets (and ConfigMaps) are never cached, so the controller holds no
// copy of the cluster's Secrets; the executor's informers are restricted
// by label.
func NewManager(restConfig *rest.Config, o *Options, exec ExecutorSetup) (ctrl.Manager, error) {
	quiet := &shutdownLog{}
	byObject := map[client.Object]ctrlcache.ByObject{}
	if exec.Cache != nil {
		for k, v := range exec.Cache() {
			byObject[k] = v
		}
	}
	mgrOpts := ctrl.Options{
		Scheme:                        NewScheme(),
		HealthProbeBindAddress:        o.HealthAddr,
		LeaderElection:                o.LeaderElection.Enable,
		LeaderElectionReleaseOnCancel: o.LeaderElection.ReleaseOnCancel,
		LeaseDuration:                 &o.LeaderElection.LeaseDuration,
		RenewDeadline:                 &o.LeaderElection.RenewDeadline,
		RetryPeriod:                   &o.LeaderElection.RetryPeriod,
		LeaderElectionID:              ControllerName + "-leader-election",
		LeaderElectionNamespace:       o.LeaderElectionNamespace,
		Logger:                        quiet.logger(o.managerLogger()),
		Client: client.Options{Cache: &client.CacheOptions{
			DisableFor: []client.Object{&corev1.Secret{}, &corev1.ConfigMap{}},
		}},
		// managedFields are never read here and were a tenth of each
		// cached object (the executor's informers set their own
		// transforms).
		Cache:   ctrlcache.Options{ByObject: byObject, DefaultTransform: ctrlcache.TransformStripManagedFields()},
		Metrics: metricsserver.Options{BindAddress: o.MetricsAddr},
		Controller: ctrlcfg.Controller{
			RecoverPanic:            ptr.To(true),
			MaxConcurrentReconciles: o.Concurrent,
		},
	}
	if o.Namespace != "" {
		mgrOpts.Cache.DefaultNamespaces = map[string]ctrlcache.Config{o.Namespace: {}}
	}
	mgr, err := ctrl.NewManager(restConfig, mgrOpts)
	if err != nil {
		return nil, err
	}
	return mgr, mgr.Add(quiet)
}

// Run starts `expsync controller` and returns when ctx ends.
func Run(ctx context.Context, o *Options, exec ExecutorSetup) error {
	ctrl.SetLogger(logger.NewLogger(o.Log))
	log := ctrl.Log.WithName("setup")
	if err := o.Jitter.SetGlobalJitter(nil); err != nil {
		return err
	}
	restConfig, err := clientConfig(o)
	if err != nil {
		return err
	}
	mgr, err := NewManager(restConfig, o, exec)
	if err != nil {
		return fmt.Errorf("manager: %w", err)
	}
	probes.SetupChecks(mgr, log)
	r, err := Setup(ctx, mgr, o, exec)
	if err != nil {
		return err
	}
	_ = r
	log.Info("starting manager", "leaderElection", o.LeaderElection.Enable, "qps", o.Client.QPS, "burst", o.Client.Burst)
	return mgr.Start(ctx)
}

// Setup registers the ExperimentRepository controller with a manager.
func Setup(ctx context.Context, mgr ctrl.Manager, o *Options, exec ExecutorSetup) (*Reconciler, error) {
	recorder, err := events.NewRecorder(ctrl.Log.WithName("events"), o.EventsAddr, ControllerName, events.WithManager(mgr))
	if err != nil {
		return nil, fmt.Errorf("event recorder: %w", err)
	}
	factory, err := exec.New(ctx, mgr, o)
	if err != nil {
		return nil, fmt.Errorf("executor: %w", err)
	}
	if o.Settings.StateDir == "" {
		return nil, fmt.Errorf("--state-dir is required")
	}
	if err := os.MkdirAll(o.Settings.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("--state-dir: %w", err)
	}
	r := &Reconciler{
		Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), EventRecorder: recorder,
		Metrics: helper.NewMetrics(mgr, fluxRecorder()), Own: NewMetrics(),
		ControllerName: ControllerName, Executors: factory, Settings: o.Settings,
	}
	// Errors (a Secret missing) are retried with Flux's exponential
	// backoff; its defaults when the flags were not bound (an embedding
	// program, a test): a zero delay would retry as fast as the API
	// server answers.
	rl := o.RateLimiter
	if rl.MinRetryDelay <= 0 {
		rl.MinRetryDelay = 750 * time.Millisecond
	}
	if rl.MaxRetryDelay <= 0 {
		rl.MaxRetryDelay = 15 * time.Minute
	}
	if r.Settings.RetryDelay <= 0 {
		r.Settings.RetryDelay = rl.MinRetryDelay
	}
	copts := controller.Options{RateLimiter: helper.GetRateLimiter(rl)}
	if o.restartable {
		copts.SkipNameValidation = ptr.To(true)
	}
	err = r.SetupWithManager(ctx, mgr, copts)
	return r, err
}

// clientConfig reads the kubeconfig or the in-cluster configuration and
// applies --kube-api-qps and --kube-api-burst. Flux's GetConfigOrDie turns
// client-side throttling off when the API server has priority and
// fairness; expsync keeps the limits the operator set either way (a commit
// of 10,000 runs must not take the whole API server's share of its
// priority level), so the flags mean what they say.
func clientConfig(o *Options) (*rest.Config, error) {
	cfg, err := ctrl.GetConfig()
	if err != nil {
		return nil, fmt.Errorf("no Kubernetes API configuration (in-cluster or KUBECONFIG): %w", err)
	}
	cfg.QPS, cfg.Burst = o.Client.QPS, o.Client.Burst
	cfg.UserAgent = ControllerName
	return cfg, nil
}

var (
	fluxRecorderOnce sync.Once
	fluxRecorderInst *metrics.Recorder
)

// fluxRecorder registers Flux's reconcile metrics once per process (a
// restarted manager in the same process reuses them).
func fluxRecorder() *metrics.Recorder {
	fluxRecorderOnce.Do(func() { fluxRecorderInst = metrics.MustMakeRecorder() })
	return fluxRecorderInst
}
