// Package results defines what expsync commits back to a branch for each run
// and how the committed results folder is laid out: the run record
// (run.json), the run folder's files, the per-experiment README with its
// table and plot, the top-level index, and the merge that rebuilds a results
// commit on top of a branch head that moved.
//
// Everything here is deterministic — the same runs give byte-identical files
// on every machine — so two writers of the same run produce no conflict and a
// regenerated README changes only when a run changes.
package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/expsync/expsync/contract"
)

// Record is the content of run.json: what a reviewer and `expsync verify`
// read. It carries the full identity document so the run ID can be
// recomputed from the record and the trees it names.
type Record struct {
	RunID      string `json:"runID"`
	IDVersion  int    `json:"idVersion"`
	Experiment string `json:"experiment"`
	SpecPath   string `json:"specPath"`
	Repository string `json:"repository"`
	Ref        string `json:"ref"`
	Commit     string `json:"commit"`
	// ContextTree is the context's real Git tree (what ran, reachable in
	// Git); ContextExcluded the spec files in it, relative to the context,
	// that identity.contextTree leaves out (contract.Context.Excluded).
	ContextTree     string          `json:"contextTree"`
	ContextExcluded []string        `json:"contextExcluded,omitempty"`
	SpecBlob        string          `json:"specBlob"`
	Templates       []GitFile       `json:"templates,omitempty"`
	Params          map[string]any  `json:"params,omitempty"`
	Image           string          `json:"image"`
	Inputs          []Input         `json:"inputs,omitempty"`
	Outputs         []Output        `json:"outputs,omitempty"`
	Status          contract.Status `json:"status"`
	ExitCode        int             `json:"exitCode"`
	// Reason says why a failed run failed, in one line (never a secret).
	Reason     string    `json:"reason,omitempty"`
	StartedAt  time.Time `json:"startedAt"`
	FinishedAt time.Time `json:"finishedAt"`
	Attempts   int       `json:"attempts"`
	// Usage leaves WallSeconds zero (startedAt and finishedAt say it).
	Usage    contract.Usage    `json:"usage"`
	Requests contract.Requests `json:"requests"`
	Executor string            `json:"executor"`
	// Scheduling is the digest of the limits and retries the run had: a
	// recorded failure stands only while they are unchanged.
	Scheduling string `json:"scheduling,omitempty"`
	LogSHA256  string `json:"logSHA256,omitempty"`
	LogSize    int64  `json:"logSize,omitempty"`
	// LogCommitted tells whether log.txt is in the folder (small logs) or
	// only in the store by LogSHA256.
	LogCommitted bool              `json:"logCommitted,omitempty"`
	Identity     contract.Identity `json:"identity"`

	// MetricsError says why a run that declares a metrics file has no
	// metrics (the file is missing, is not a flat object of numbers, is a
	// symlink...); it does not fail the run.
	MetricsError string `json:"metricsError,omitempty"`

	// Queue is the Kueue queue a Job waited in and how long (kubernetes
	// mode), from the Job's creation to Kueue's admission.
	Queue *Queue `json:"queue,omitempty"`
	// SelfReported names what only the code under test vouches for
	// ("usage", "metrics", "log": a run in a pod measured and captured them
	// inside its own image); the rest was checked by expsync.
	SelfReported []string `json:"selfReported,omitempty"`
}

// Queue is where a run waited for quota before it started.
type Queue struct {
	Name        string    `json:"name"`
	AdmittedAt  time.Time `json:"admittedAt"`
	WaitSeconds float64   `json:"waitSeconds"`
}

// GitFile is a repository file the run depended on, named by its blob ID.
type GitFile struct {
	Path string `json:"path"`
	Blob string `json:"blob"`
}

// Input is an input as the run consumed it.
type Input struct {
	Name   string `json:"name"`
	Path   string `json:"path,omitempty"`
	SHA256 string `json:"sha256"`
	URI    string `json:"uri,omitempty"`
	// RepoPath and GitBlob are set for files of the repository.
	RepoPath string `json:"repoPath,omitempty"`
	GitBlob  string `json:"gitBlob,omitempty"`
}

// Output is one file the run produced. Committed outputs are in the run
// folder under outputs/<path>; the others are in the store by digest.
type Output struct {
	Path      string `json:"path"`
	SHA256    string `json:"sha256"`
	Size      int64  `json:"size"`
	Committed bool   `json:"committed"`
}

// Duration is the wall time of the run (zero when a timestamp is missing).
func (r *Record) Duration() time.Duration {
	if r.StartedAt.IsZero() || r.FinishedAt.IsZero() || r.FinishedAt.Before(r.StartedAt) {
		return 0
	}
	return r.FinishedAt.Sub(r.StartedAt)
}

// MarshalRecord encodes a record as deterministic, indented JSON with a
// trailing newline. Times are normalised to UTC so the bytes do not depend
// on the machine's time zone.
func MarshalRecord(r *Record) ([]byte, error) {
	c := *r
	c.StartedAt = c.StartedAt.UTC()
	c.FinishedAt = c.FinishedAt.UTC()
	c.Repository = SanitizeURL(c.Repository)
	return MarshalJSON(&c)
}

// ParseRecord decodes a run.json. Unknown fields are allowed (a newer expsync
// may add some); a missing run ID or experiment is an error.
func ParseRecord(data []byte) (*Record, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var r Record
	if err := dec.Decode(&r); err != nil {
		return nil, fmt.Errorf("parse run.json: %w", err)
	}
	if r.RunID == "" || r.Experiment == "" {
		return nil, fmt.Errorf("parse run.json: runID and experiment are required")
	}
	return &r, nil
}

// MarshalJSON encodes v deterministically: map keys sorted (encoding/json
// does that), two-space indentation, no HTML escaping, trailing newline.
func MarshalJSON(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// SanitizeURL removes anything that could be a credential from a repository
// URL: the user info of http(s) URLs (tokens are often passed as the user
// name), passwords of any URL, and query strings and fragments. SSH user
// names ("git@host:path", "ssh://git@host/path") are kept: they are not
// secrets and the URL does not work without them.
func SanitizeURL(raw string) string {
	if raw == "" {
		return raw
	}
	if !strings.Contains(raw, "://") {
		return raw // scp-like "git@host:path" or a local path: nothing secret
	}
	u, err := url.Parse(raw)
	if err != nil {
		// Unparseable: keep only what is certainly not user info.
		if i := strings.LastIndex(raw, "@"); i >= 0 {
			scheme := raw[:strings.Index(raw, "://")+3]
			return scheme + raw[i+1:]
		}
		return raw
	}
	switch u.Scheme {
	case "http", "https":
		u.User = nil
	default:
		if u.User != nil {
			u.User = url.User(u.User.Username())
		}
	}
	u.RawQuery = ""
	u.Fragment = ""
	return u.String()
}
