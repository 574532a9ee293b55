package controller

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	ctrlmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
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
	// QueueWait is Kueue's admission time minus the Job's creation.
	QueueWait prometheus.Histogram
	// PushAttempts counts results pushes by outcome: first (landed at the
	// first attempt), retried (each lost race rebuilt and pushed again),
	// failed (gave up; retried at the next batch).
	PushAttempts *prometheus.CounterVec
	// RunsFinished counts finished runs by status.
	RunsFinished *prometheus.CounterVec
}

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
			QueueWait: prometheus.NewHistogram(prometheus.HistogramOpts{
				Name:    "expsync_queue_wait_seconds",
				Help:    "Kueue queue wait of a run: admission time minus Job creation.",
				Buckets: prometheus.ExponentialBuckets(1, 2, 16),
			}),
			PushAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "expsync_push_attempts_total",
				Help: "Results pushes by outcome: first, retried (a lost race rebuilt and pushed again), failed.",
			}, []string{"outcome"}),
			RunsFinished: prometheus.NewCounterVec(prometheus.CounterOpts{
				Name: "expsync_runs_finished_total",
				Help: "Runs finished (executed or recovered from the run cache), by status.",
			}, []string{"status"}),
		}
		ctrlmetrics.Registry.MustRegister(m.Runs, m.JobCreation, m.QueueWait, m.PushAttempts, m.RunsFinished)
		metricsInst = m
	})
	return metricsInst
}

// forget drops the series of a deleted object.
func (m *Metrics) forget(namespace, name string) {
	m.Runs.DeletePartialMatch(prometheus.Labels{"namespace": namespace, "name": name})
}
