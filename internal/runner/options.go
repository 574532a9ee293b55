package runner

import (
	"context"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/expsync/expsync/store"
)

// Options are the operator's settings for running contracts. The zero value
// works: every field has a default.
type Options struct {
	// Store holds the context, inputs, outputs and logs; nil opens the
	// contract's Store location.
	Store store.Store
	// WorkRoot is where attempt folders are made (default: <store>/work for
	// a local store, so context files can be hard-linked from it and
	// outputs linked into it; $TMPDIR/expsync-work otherwise).
	WorkRoot string
	// KeepWork keeps attempt folders after the run, for debugging.
	KeepWork bool
	// PreparedWork is a work folder Materialise already filled and
	// verified (a pod's init container): the first attempt runs in it as
	// it is, and it is left in place afterwards.
	PreparedWork string

	// DefaultTimeout applies when the contract has none (default 24h).
	DefaultTimeout time.Duration
	// KillGrace is the time between SIGTERM and SIGKILL of the process
	// group on timeout or cancellation (default 10s).
	KillGrace time.Duration
	// MaxLogBytes bounds the stored log (default 64 MiB); the contract may
	// lower it. Beyond it the log keeps its head and its last 4 KiB.
	MaxLogBytes int64
	// MaxOutputBytes bounds the total size of the outputs (default 10 GiB);
	// the contract may lower it.
	MaxOutputBytes int64
	// MaxInputBytes bounds each fetched input (default 10 GiB).
	MaxInputBytes int64
	// MaxMetricsBytes bounds the metrics file (default 1 MiB).
	MaxMetricsBytes int64
	// VerifyStoreObjects rehashes every object placed in the work folder
	// (for stores other processes can write, as in a pod). Off by default:
	// the local store verifies each object when it is written.
	VerifyStoreObjects bool

	// HTTPClient fetches URL inputs (default: a client with a 30s
	// connection timeout and no overall timeout, bounded by ctx).
	HTTPClient *http.Client

	// Secrets resolves secretRef variables; default: EnvSecrets, then
	// SecretsFile when set.
	Secrets SecretSource
	// SecretsFile is a YAML file `{<secret name>: {<key>: <value>}}`.
	SecretsFile string
	// SecretsFromVariables also reads a secretRef variable from this
	// process's variable of the same name, as Kubernetes injects a
	// secretKeyRef into a pod (expsync exec sets it).
	SecretsFromVariables bool
	// Redact are further values to redact from logs and withhold from
	// outputs: credentials the caller holds that are not in an
	// EXPSYNC_*SECRET/PASSWORD/PASSPHRASE/TOKEN* variable (those are found
	// by themselves), such as a Git password read from another variable.
	Redact []string
	// PATH is the command's PATH (default: this process's PATH).
	PATH string

	// SingleAttempt runs one attempt and leaves retries to the caller (a
	// Kubernetes Job's podFailurePolicy, through the exit code).
	SingleAttempt bool
	// InfraRetries bounds retries after infrastructure failures (default 3);
	// the contract's Retries.Limit bounds retries after transient exit codes.
	InfraRetries int
	// Backoff is the first retry's delay (default 1s), doubled per retry up
	// to MaxBackoff (default 30s).
	Backoff    time.Duration
	MaxBackoff time.Duration

	// Admit, when set, is called before each attempt's process starts, after
	// its work folder is ready; the process starts once it returns, and
	// release is called as soon as the process group has ended (before the
	// outputs are hashed). An error (ctx ended, shutdown) cancels the run.
	// The executor admits by resources here, so preparing and hashing,
	// which are I/O, overlap with other runs' processes.
	Admit func(ctx context.Context) (release func(), err error)

	// NoReaper starts the command directly, without the reaper process
	// that ends every process of the run with it (reaper.go): only for
	// comparing the two.
	NoReaper bool
	// NoCgroup does not put the run in a cgroup of its own even where the
	// machine allows it (cgroup.go): only for comparing.
	NoCgroup bool

	// OnStart is called once per attempt right after the process started,
	// before it is waited for (the executor journals the process group).
	OnStart func(Started)
}

// Started describes a started attempt.
type Started struct {
	RunID   string
	Attempt int
	// PID is the direct child; it leads its own process group (PGID == PID).
	PID int
	// StartTicks is the process's start time in clock ticks since boot
	// (field 22 of /proc/<pid>/stat), which tells a reused PID apart.
	StartTicks uint64
	WorkDir    string
}

func (o Options) withDefaults() Options {
	if o.WorkRoot == "" {
		if l, ok := o.Store.(*store.Local); ok {
			o.WorkRoot = filepath.Join(l.Root(), "work")
		} else {
			o.WorkRoot = filepath.Join(os.TempDir(), "expsync-work")
		}
	}
	// A run's HOME and TMPDIR are its attempt folder, and the command runs
	// inside it: a relative path (expsync run --state state) would point
	// nowhere from there, and record expsync's working folder in outputs.
	if abs, err := filepath.Abs(o.WorkRoot); err == nil {
		o.WorkRoot = abs
	}
	if o.PreparedWork != "" {
		if abs, err := filepath.Abs(o.PreparedWork); err == nil {
			o.PreparedWork = abs
		}
	}
	if o.DefaultTimeout <= 0 {
		o.DefaultTimeout = 24 * time.Hour
	}
	if o.KillGrace <= 0 {
		o.KillGrace = 10 * time.Second
	}
	if o.MaxLogBytes <= 0 {
		o.MaxLogBytes = 64 << 20
	}
	if o.MaxOutputBytes <= 0 {
		o.MaxOutputBytes = 10 << 30
	}
	if o.MaxInputBytes <= 0 {
		o.MaxInputBytes = 10 << 30
	}
	if o.MaxMetricsBytes <= 0 {
		o.MaxMetricsBytes = 1 << 20
	}
	if o.HTTPClient == nil {
		o.HTTPClient = defaultHTTPClient
	}
	if o.PATH == "" {
		o.PATH = os.Getenv("PATH")
		if o.PATH == "" {
			o.PATH = "/usr/local/bin:/usr/bin:/bin"
		}
	}
	if o.InfraRetries <= 0 {
		o.InfraRetries = 3
	}
	if o.Backoff <= 0 {
		o.Backoff = time.Second
	}
	if o.MaxBackoff <= 0 {
		o.MaxBackoff = 30 * time.Second
	}
	return o
}
