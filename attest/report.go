package attest

import (
	"errors"
	"fmt"
	"strings"
)

// Status is the outcome of one check.
type Status string

const (
	StatusOK         Status = "ok"
	StatusFailed     Status = "failed"
	StatusNotChecked Status = "not-checked"
)

// Check is one named check of a verification and its outcome.
type Check struct {
	Name   string `json:"name"`
	Status Status `json:"status"`
	Detail string `json:"detail,omitempty"`
}

// Report is the outcome of verifying one results folder or envelope.
type Report struct {
	// Path is the folder (or envelope file) verified.
	Path string `json:"path"`
	// RunID is the run ID the folder claims (its name).
	RunID  string  `json:"runID,omitempty"`
	Checks []Check `json:"checks"`
	// Reproductions are the folder's reproduction statements, verified.
	Reproductions []ReproductionFile `json:"reproductions,omitempty"`
	// Verified is the authenticated content; nil unless the signature and
	// statement checks passed.
	Verified *Verified `json:"-"`
}

// Add records a check; callers with checks of their own (the repository
// checks of `expsync verify --repo`) add them to the same report.
func (r *Report) Add(name string, status Status, detail string) {
	r.Checks = append(r.Checks, Check{Name: name, Status: status, Detail: detail})
}

func (r *Report) ok(name, detail string)         { r.Add(name, StatusOK, detail) }
func (r *Report) fail(name, detail string)       { r.Add(name, StatusFailed, detail) }
func (r *Report) notChecked(name, detail string) { r.Add(name, StatusNotChecked, detail) }

// OK reports whether no check failed.
func (r *Report) OK() bool { return len(r.Failures()) == 0 }

// Failures returns the failed checks.
func (r *Report) Failures() []Check {
	var out []Check
	for _, c := range r.Checks {
		if c.Status == StatusFailed {
			out = append(out, c)
		}
	}
	return out
}

// ErrNotVerified is wrapped by Report.Err.
var ErrNotVerified = errors.New("attestation not verified")

// Err is nil when every check passed, else an error naming each failure.
func (r *Report) Err() error {
	failures := r.Failures()
	if len(failures) == 0 {
		return nil
	}
	parts := make([]string, len(failures))
	for i, c := range failures {
		parts[i] = c.Name + ": " + c.Detail
	}
	return fmt.Errorf("%s: %w: %s", r.Path, ErrNotVerified, strings.Join(parts, "; "))
}
