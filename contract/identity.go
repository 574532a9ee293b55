package contract

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sync"

	"github.com/gowebpki/jcs"
)

// IDVersion is the version of the run-ID recipe. Bump it only when the recipe
// changes; a release that changes a default must not silently move IDs.
const IDVersion = 1

// Identity is everything that determines a run's result, and nothing else:
// scheduling fields (resources, timeout, retries, queue, priority, placement)
// and the sweep definition are deliberately absent. The run ID is the sha256
// of its canonical JSON (RFC 8785).
//
// The api/render owner completes this type and its ID method; keep field names
// stable once IDs are published.
type Identity struct {
	IDVersion  int    `json:"idVersion"`
	Experiment string `json:"experiment"`
	// Image is the image's digest alone ("sha256:<hex>", no name or tag: a
	// re-tag moves nothing), or HostImage for local processes.
	Image   string         `json:"image"`
	Command []string       `json:"command"`
	Env     []EnvVar       `json:"env,omitempty"`
	Params  map[string]any `json:"params,omitempty"`
	// ContextTree is the Git tree ID of the experiment's context without
	// the repository's spec files (Context.Excluded): the context's real
	// tree (Context.Tree) when none lies inside it. It need not exist as an
	// object in the repository.
	ContextTree string          `json:"contextTree"`
	Inputs      []IdentityInput `json:"inputs,omitempty"`
	Outputs     []string        `json:"outputs,omitempty"`
	Metrics     string          `json:"metrics,omitempty"`
	// Repeat distinguishes explicit reruns of the same point (0 = first).
	Repeat int `json:"repeat,omitempty"`
}

// IdentityInput is an input as far as it determines the result.
type IdentityInput struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}

// Canonical returns the identity's RFC 8785 (JCS) canonical JSON: object keys
// sorted by UTF-16 code units, no whitespace, numbers in ECMAScript form. It
// is the exact byte string whose sha256 is the run ID, so anyone can
// recompute an ID from a run.json with any JCS implementation.
//
// Param values must be JSON values (string, bool, float64, int and kin,
// nil, []any, map[string]any); integers beyond ±2^53 lose precision as JSON
// numbers and are refused by the loader before they get here.
func (i Identity) Canonical() ([]byte, error) {
	if b, ok := appendCanonical(make([]byte, 0, 1024), i); ok {
		return b, nil
	}
	return i.canonicalJCS()
}

// canonicalJCS is the general path: encoding/json, then jcs.Transform.
func (i Identity) canonicalJCS() ([]byte, error) {
	raw, err := json.Marshal(i)
	if err != nil {
		return nil, fmt.Errorf("encode run identity: %w", err)
	}
	canonical, err := jcs.Transform(raw)
	if err != nil {
		return nil, fmt.Errorf("canonicalise run identity: %w", err)
	}
	return canonical, nil
}

// canonicalBuffers recycles ID's scratch space: planning a large sweep
// hashes one identity per run.
var canonicalBuffers = sync.Pool{New: func() any { b := make([]byte, 0, 2048); return &b }}

// ID returns the run ID: the lowercase hex sha256 of Canonical().
func (i Identity) ID() (string, error) {
	buf := canonicalBuffers.Get().(*[]byte)
	defer canonicalBuffers.Put(buf)
	if b, ok := appendCanonical((*buf)[:0], i); ok {
		*buf = b
		sum := sha256.Sum256(b)
		return hex.EncodeToString(sum[:]), nil
	}
	canonical, err := i.canonicalJCS()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(canonical)
	return hex.EncodeToString(sum[:]), nil
}

// IsRunID reports whether s is written as a run ID is: 64 lowercase hex
// digits (a run folder's name, an invocation ID).
func IsRunID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if c := s[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}

// ShortID is a run ID (or a Git object ID) cut to the 12 characters logs
// and tables show.
func ShortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}
