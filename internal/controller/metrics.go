package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"

	"github.com/expsync/expsync/reconcile"
)

// Metrics are expsync's own Prometheus series, beside Flux's
// gotk_reconcile_duration_seconds and condition gauges (fluxcd/pkg/runtime
// metrics) and controller-runtime's workqueue and client series, all on the
// manager's /metrics endpoint.
type Metrics struct {
	// Runs counts each ExperimentRepository's runs of its observed commits
	// by phase (planned, succeeded, failed, running, held).
	Runs *prometheus.GaugeVec
	// JobCreation is the time from a run being submitted to its Job
	// existing (client-side rate limits and API latency included).
	JobCreation prometheus.Histogram
	// QueueWait is Kueue's admission time minus the Job's creation, per
	// ExperimentRepository.
	QueueWait *prometheus.HistogramVec
	// PushAttempts counts each ExperimentRepository's results pushes
	// (outcome "attempt": every push sent, first tries and retries alike).
	PushAttempts *prometheus.CounterVec
	// RunsFinished counts finished runs by ExperimentRepository and status.
	RunsFinished *prometheus.CounterVec
	// RunDuration is a run's finished-at minus started-at, by
	// ExperimentRepository and status (runs recovered from the run cache
	// are not observed again).
	RunDuration *prometheus.HistogramVec

	// queueWaits holds the queue wait executor/kube observed for a run
	// (by namespace and run ID) until the engine reports the run finished
	// for its ExperimentRepository.
	mu         sync.Mutex
	queueWaits map[string]float64
}

// repoLabels are the labels naming an ExperimentRepository.
var repoLabels = []string{"namespace", "name"}

var (
	metricsOnce sync.Once
	metricsInst *Metrics
)

// NewMetrics registers the series once per process with controller-runtime's
// registry (what the manager's metrics server exposes).
func NewMetrics() *Metrics {
	metricsOnce.Do(func() {
		m := &Metrics{
			Runs: prometheus.NewGaugeVec(prometheus.GaugeOpts{
				Name: "expsync_runs",
				Help: "Runs of the observed commits of an ExperimentRepository, by phase.",
			}, []string{"namespace", "name", "phase"}),
			JobCreation: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "expsync_job_creation_latency_seconds",
				Help:    "Time from a run's submission to its Job being created.",
				Buckets: prometheus.ExponentialBuckets(0.005, 2, 14),
			}),
			QueueWait: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "expsync_queue_wait_seconds",
				Help:    "Kueue queue wait of a run: admission time minus Job creation, by ExperimentRepository.",
				Buckets: prometheus.ExponentialBuckets(1, 2, 16),
			}, repoLabels),
			PushAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "expsync_push_attempts_total",
				Help: "Results pushes sent (first tries and retries), by ExperimentRepository.",
			}, append(repoLabels, "outcome")),
			RunsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "expsync_runs_finished_total",
				Help: "Runs finished (executed or recovered from the run cache), by ExperimentRepository and status.",
			}, append(repoLabels, "status")),
			RunDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
				Name:    "expsync_run_duration_seconds",
				Help:    "Run duration (finished at minus started at), by ExperimentRepository and status.",
				Buckets: prometheus.ExponentialBuckets(1, 2, 18),
			}, append(repoLabels, "status")),
			queueWaits: map[string]float64{},
		}
		ctrlmetrics.Registry.MustRegister(m.Runs, m.JobCreation, m.QueueWait, m.PushAttempts, m.RunsFinished, m.RunDuration)
		metricsInst = m
	})
	return metricsInst
}

// forget drops the series of a deleted object.
func (m *Metrics) forget(namespace, name string) {
	l := prometheus.Labels{"namespace": namespace, "name": name}
	m.Runs.DeletePartialMatch(l)
	m.QueueWait.DeletePartialMatch(l)
	m.PushAttempts.DeletePartialMatch(l)
	m.RunsFinished.DeletePartialMatch(l)
	m.RunDuration.DeletePartialMatch(l)
}

// maxPendingQueueWaits bounds queueWaits: waits of runs whose finish the
// engine never reports (an object deleted meanwhile) must not pile up.
const maxPendingQueueWaits = 10000

// observedQueueWait keeps a run's queue wait until runFinished names its
// ExperimentRepository (executor/kube reports the wait by namespace and
// run ID, before the engine reports the run finished).
func (m *Metrics) observedQueueWait(namespace, runID string, seconds float64) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if len(m.queueWaits) >= maxPendingQueueWaits {
		clear(m.queueWaits)
	}
	m.queueWaits[namespace+"/"+runID] = seconds
}

// runFinished records a finished run of an ExperimentRepository.
func (m *Metrics) runFinished(namespace, name string, e reconcile.Event) {
	m.RunsFinished.WithLabelValues(namespace, name, e.Status).Inc()
	if !e.Recovered && e.Duration > 0 {
		m.RunDuration.WithLabelValues(namespace, name, e.Status).Observe(e.Duration.Seconds())
	}
	m.mu.Lock()
	wait, ok := m.queueWaits[namespace+"/"+e.RunID]
	delete(m.queueWaits, namespace+"/"+e.RunID)
	m.mu.Unlock()
	if ok {
		m.QueueWait.WithLabelValues(namespace, name).Observe(wait)
	}
}
