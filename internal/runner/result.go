package runner

import (
	"encoding/json"
	"time"

	"github.com/expsync/expsync/store"
)

// Status is how a run ended.
type Status string

const (
	// Succeeded: exit code 0 and every declared output present within limits.
	Succeeded Status = "Succeeded"
	// Failed: a non-zero exit code (after retries), a missing or
	// oversized output, an output holding a secret, or a command that
	// cannot start (not found: exit code 127; not executable: 126), or an
	// input that can never be placed as the run names it (a URL answering
	// 404 or 410, a path through a symlink of the context).
	Failed Status = "Failed"
	// TimedOut: the last attempt exceeded the per-attempt timeout.
	TimedOut Status = "TimedOut"
	// Cancelled: the caller's context ended. Never cached.
	Cancelled Status = "Cancelled"
	// InputMismatch: an input's bytes differ from its declared sha256; the
	// command never started.
	InputMismatch Status = "InputMismatch"
	// Errored: an infrastructure failure that outlived the retries (the
	// process could not be created, an input could not be fetched, a
	// secret is missing...). Never cached.
	Errored Status = "Error"
)

// Cacheable reports whether a result of this status may stand in for the
// run next time: a run that was cancelled or hit an infrastructure error
// must run again.
func (s Status) Cacheable() bool {
	switch s {
	case Succeeded, Failed, TimedOut, InputMismatch:
		return true
	}
	return false
}

// Result is the outcome of one run, stored in the run cache as result.json.
type Result struct {
	RunID  string `json:"runID"`
	Status Status `json:"status"`
	// ExitCode is the last attempt's exit code; -1 when the command did not
	// start or was killed by a signal (Signal then names it).
	ExitCode     int    `json:"exitCode"`
	Signal       string `json:"signal,omitempty"`
	SignalNumber int    `json:"signalNumber,omitempty"`
	// Attempts counts the attempts made (1 without retries).
	Attempts int `json:"attempts"`
	// QueuedAt is when the runner took the run (before its work folder was
	// prepared and it waited for admission); StartedAt is when the first
	// attempt's process started (QueuedAt when no process started).
	QueuedAt   time.Time `json:"queuedAt"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	// Outputs lists every declared output's files, sorted by path; folders
	// expand to their files. Each is in the store by SHA256.
	Outputs []store.Entry `json:"outputs"`
	// Withheld lists the outputs that hold the value of one of the run's
	// secrets: they are in the store, but must never be committed (see
	// Committable). The run fails when there is any.
	Withheld []string `json:"withheld,omitempty"`
	// Metrics is the metrics file's flat object of numbers; MetricsError says
	// why it is absent when the contract declares one.
	Metrics       map[string]float64 `json:"metrics,omitempty"`
	MetricsSHA256 string             `json:"metricsSHA256,omitempty"`
	MetricsError  string             `json:"metricsError,omitempty"`
	// LogSHA256 names the captured stdout+stderr in the store (secrets
	// redacted); LogTail is its last ~4 KiB.
	LogSHA256    string `json:"logSHA256,omitempty"`
	LogSize      int64  `json:"logSize"`
	LogTruncated bool   `json:"logTruncated,omitempty"`
	LogTail      string `json:"logTail,omitempty"`
	// Usage is measured by the runner from the last attempt.
	Usage Usage `json:"usage"`
	// Requests are the contract's resource requests, next to Usage so users
	// can right-size.
	Requests Requests `json:"requests"`
	// Queue is the Kueue LocalQueue a Job waited in, and AdmittedAt when
	// Kueue admitted it (kubernetes mode): the run waited AdmittedAt -
	// QueuedAt for quota.
	Queue      string    `json:"queue,omitempty"`
	AdmittedAt time.Time `json:"admittedAt,omitzero"`
	// SchedulingDigest is the sha256 of the contract's limits and retries: a
	// cached failure stands only while they are unchanged.
	SchedulingDigest string `json:"schedulingDigest"`
	// Error explains any status other than Succeeded in one line.
	Error string `json:"error,omitempty"`
	// Cached is set (not stored) when the result came from the run cache.
	Cached bool `json:"-"`
}

// Committable reports whether the output at path may be committed to the
// results folder: false for outputs that hold a secret's value.
func (r *Result) Committable(path string) bool {
	for _, w := range r.Withheld {
		if w == path {
			return false
		}
	}
	return true
}

// Usage is what one attempt consumed.
type Usage struct {
	CPUSeconds  float64 `json:"cpuSeconds"`
	MaxRSSBytes int64   `json:"maxRSSBytes"`
	// MaxRSSMethod says how MaxRSSBytes was measured: "rusage" (the
	// kernel's exact peak) or "sampled" (the largest VmHWM read from /proc
	// while the run lived: a lower bound). See memory.go.
	MaxRSSMethod string  `json:"maxRSSMethod,omitempty"`
	WallSeconds  float64 `json:"wallSeconds"`
	// SelfReported is true when the numbers come from the code under test
	// (a pod), false when the runner measured them.
	SelfReported bool `json:"selfReported"`
}

// Requests are the resources the contract asked for.
type Requests struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// MarshalResult returns the result's JSON as stored in the run cache.
func MarshalResult(r *Result) ([]byte, error) { return json.MarshalIndent(r, "", "  ") }
