package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"
)

// Status is how a run ended: the runner records it in a Result, and the
// results folder commits it in run.json as it is.
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
	// Cancelled: the caller's context ended. Never cached, never committed.
	Cancelled Status = "Cancelled"
	// InputMismatch: an input's bytes differ from its declared sha256; the
	// command never started.
	InputMismatch Status = "InputMismatch"
	// Errored: an infrastructure failure that outlived the retries (the
	// process could not be created, an input could not be fetched, a
	// secret is missing...). Never cached, never committed.
	Errored Status = "Error"
)

// Cacheable reports whether a result of this status may stand in for the
// run next time (and so be committed): a run that was cancelled or hit an
// infrastructure error must run again.
func (s Status) Cacheable() bool {
	switch s {
	case Succeeded, Failed, TimedOut, InputMismatch:
		return true
	}
	return false
}

// Exit codes with a meaning of their own: what `expsync exec` exits with in a
// pod, and what a Job's podFailurePolicy (render.Job) acts on. Untyped, so
// they serve as an int (a process's code) and an int32 (the Kubernetes API's).
const (
	// ExitInputMismatch (EX_DATAERR): an input's digest is not the declared
	// one; retrying cannot help, the Job fails at once.
	ExitInputMismatch = 65
	// ExitTimedOut: the attempt's timeout ended it, as coreutils timeout(1).
	ExitTimedOut = 124
	// ExitInfrastructure: the runner itself could not finish (the store or
	// an input's server unreachable...): the Job retries.
	ExitInfrastructure = 222
)

// Result is the outcome of one run: what an executor returns, what the run
// cache stores as result.json, and what run.json and the provenance are
// written from.
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
	Outputs []File `json:"outputs"`
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
	// SelfReported names what only the code under test vouches for
	// (SelfReportedUsage, ...): a run in a pod reports its usage, metrics
	// numbers and log from inside its own image.
	SelfReported []string `json:"selfReported,omitempty"`
	// SchedulingDigest is Contract.SchedulingDigest of the contract that
	// ran: a cached failure stands only while it is unchanged.
	SchedulingDigest string `json:"schedulingDigest"`
	// Error explains any status other than Succeeded in one line.
	Error string `json:"error,omitempty"`
	// Cached is set (not stored) when the result came from the run cache.
	Cached bool `json:"-"`
}

// What a Result may name as self-reported.
const (
	SelfReportedUsage   = "usage"
	SelfReportedMetrics = "metrics"
	SelfReportedLog     = "log"
)

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

// File is a file by content: a run's output, or an entry of a tree manifest
// in the store. Symlinks are data: their SHA256 and Size are those of the
// link target string, and nothing follows them.
type File struct {
	// Path is slash-separated, relative to the tree's (or work folder's) root.
	Path string `json:"path"`
	// Mode is the Git mode in octal: "100644", "100755" or "120000".
	Mode   string `json:"mode"`
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
	// GitBlob is the Git blob ID for entries exported from a repository.
	GitBlob string `json:"gitBlob,omitempty"`
}

// Usage is what a run's last attempt consumed.
type Usage struct {
	CPUSeconds  float64 `json:"cpuSeconds"`
	MaxRSSBytes int64   `json:"maxRSSBytes"`
	// MaxRSSMethod says how MaxRSSBytes was measured: one of the MaxRSS*
	// constants (see docs/running-runs.md).
	MaxRSSMethod string `json:"maxRSSMethod,omitempty"`
	// WallSeconds is the attempt's wall time. run.json leaves it out (it
	// records startedAt and finishedAt instead).
	WallSeconds float64 `json:"wallSeconds,omitempty"`
	// SelfReported is true when the numbers come from the code under test
	// (a pod), false when the runner or the kubelet measured them.
	SelfReported bool `json:"selfReported"`
}

// How Usage.MaxRSSBytes was measured.
const (
	// MaxRSSByRusage: the kernel's exact peak (wait4's rusage).
	MaxRSSByRusage = "rusage"
	// MaxRSSSampled: the largest VmHWM read from /proc while the run
	// lived: a lower bound.
	MaxRSSSampled = "sampled"
	// MaxRSSUnmeasured: the run ended before its first sample; its peak is
	// below expsync's own and otherwise unknown (MaxRSSBytes is 0).
	MaxRSSUnmeasured = "unmeasured"
)

// Requests are the resources a contract asked for, in Kubernetes quantity
// syntax, recorded next to Usage so users can right-size.
type Requests struct {
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// Requests returns the contract's resource requests.
func (c Contract) Requests() Requests {
	return Requests{CPU: c.Limits.CPU, Memory: c.Limits.Memory}
}

// SchedulingDigest is the sha256 of the contract's limits and retries: the
// fields outside the run ID that decide whether a recorded failure stands
// (changing them retries a failed run, never a successful one).
func (c Contract) SchedulingDigest() string {
	b, _ := json.Marshal(struct {
		L Limits  `json:"limits"`
		R Retries `json:"retries"`
	}{c.Limits, c.Retries})
	return SHA256Hex(b)
}

// SHA256Hex is the lowercase hex sha256 of b: how the store names objects
// and how contracts, results and statements write digests.
func SHA256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

// MarshalResult returns the result's JSON as stored in the run cache.
func MarshalResult(r *Result) ([]byte, error) { return json.MarshalIndent(r, "", "  ") }
