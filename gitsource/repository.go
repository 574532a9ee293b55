package gitsource

import (
	"context"
	"fmt"
	"path"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

// Repository is what the operator configures for one tracked repository.
type Repository struct {
	URL    string
	Auth   *Auth
	Refs   []RefPolicy
	Verify *VerifyPolicy
	Limits Limits
	// URLPolicy restricts the URL forms accepted (controller mode, http).
	URLPolicy URLPolicy
}

// RefPolicy is one watched ref pattern.
type RefPolicy struct {
	// Pattern is a branch name ("main"), a branch glob ("exp/*"), or a full
	// ref name or glob ("refs/pull/*/head"). '*' matches within one path
	// segment, as path.Match does.
	Pattern string
	// Trusted refs run their commits. Untrusted refs (for example pull
	// requests from forks) run a commit only when every new commit is
	// signed by an allowed key.
	Trusted bool
	// ResultsBranch receives results for refs that cannot (or must not) be
	// pushed to, such as refs/pull/*/head. "" means: the ref itself, which
	// must then be a branch.
	ResultsBranch string
}

// Limits bound what one repository can cost.
type Limits struct {
	// MaxFileBytes caps one blob read through a Snapshot (default 32 MiB).
	MaxFileBytes int64
	// MaxRepoBytes caps the on-disk cache of the repository after a fetch,
	// and what one fetched pack inflates to (its objects uncompressed,
	// checked while indexing it, before they are made) (default 2 GiB); a
	// larger repository is refused and its cache dropped.
	MaxRepoBytes int64
	// MaxVerifyCommits caps how many new commits one verification walks
	// (default 1000); more is refused rather than silently truncated.
	MaxVerifyCommits int
	// Timeout bounds one operation (a poll, a snapshot, one commit-back
	// attempt) when the caller's context has no earlier deadline
	// (default 5 minutes), so a silent server cannot hang a reconcile.
	Timeout time.Duration
	// IdleTimeout bounds how long one connection may make no progress:
	// the dial, a TLS or SSH handshake, waiting for a response, and every
	// read and write in a transfer (default 60 seconds). A large fetch
	// that keeps receiving data is not cut by it; a stalled one is, long
	// before Timeout. HTTP(S) and SSH only: git:// is bounded by Timeout.
	IdleTimeout time.Duration
}

const (
	defaultMaxFileBytes     = 32 << 20
	defaultMaxRepoBytes     = 2 << 30
	defaultMaxVerifyCommits = 1000
	defaultTimeout          = 5 * time.Minute
	defaultIdleTimeout      = 60 * time.Second
)

func (l Limits) withDefaults() Limits {
	if l.MaxFileBytes <= 0 {
		l.MaxFileBytes = defaultMaxFileBytes
	}
	if l.MaxRepoBytes <= 0 {
		l.MaxRepoBytes = defaultMaxRepoBytes
	}
	if l.MaxVerifyCommits <= 0 {
		l.MaxVerifyCommits = defaultMaxVerifyCommits
	}
	if l.Timeout <= 0 {
		l.Timeout = defaultTimeout
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = defaultIdleTimeout
	}
	return l
}

// fullPattern expands a short branch pattern into a full ref pattern.
func (p RefPolicy) fullPattern() string {
	if strings.HasPrefix(p.Pattern, "refs/") {
		return p.Pattern
	}
	return "refs/heads/" + p.Pattern
}

// Match reports whether the full ref name is watched by this policy.
func (p RefPolicy) Match(ref string) bool {
	ok, err := path.Match(p.fullPattern(), ref)
	return err == nil && ok
}

func (p RefPolicy) validate() error {
	if p.Pattern == "" {
		return fmt.Errorf("ref pattern is empty")
	}
	if _, err := path.Match(p.fullPattern(), ""); err != nil {
		return fmt.Errorf("ref pattern %q: %w", p.Pattern, err)
	}
	if strings.Contains(p.Pattern, "..") || strings.HasPrefix(p.Pattern, "-") {
		return fmt.Errorf("ref pattern %q: '..' and a leading '-' are not allowed", p.Pattern)
	}
	if p.ResultsBranch != "" {
		if err := plumbing.NewBranchReferenceName(p.ResultsBranch).Validate(); err != nil {
			return fmt.Errorf("results branch %q: %w", p.ResultsBranch, err)
		}
	}
	return nil
}

// PolicyFor returns the first policy that matches ref.
func (r Repository) PolicyFor(ref string) (RefPolicy, bool) {
	for _, p := range r.Refs {
		if p.Match(ref) {
			return p, true
		}
	}
	return RefPolicy{}, false
}

// ResultsBranchFor names the branch that receives results of commits on ref:
// the policy's ResultsBranch, or the ref's own branch. It fails for a ref
// that is not a branch and has no results branch.
func (r Repository) ResultsBranchFor(ref string) (string, error) {
	p, ok := r.PolicyFor(ref)
	if ok && p.ResultsBranch != "" {
		return p.ResultsBranch, nil
	}
	if name := plumbing.ReferenceName(ref); name.IsBranch() {
		return name.Short(), nil
	}
	return "", fmt.Errorf("ref %s is not a branch and its pattern has no results branch; set ResultsBranch", ref)
}

// needsVerification reports whether commits on ref must be verified.
func (r Repository) needsVerification(p RefPolicy) bool {
	return !p.Trusted || (r.Verify != nil && r.Verify.Required)
}

// withTimeout applies Limits.Timeout unless ctx ends earlier, and attaches
// Limits.IdleTimeout for the connections the operation opens.
func (l Limits) withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx = withIdle(ctx, l.IdleTimeout)
	if d, ok := ctx.Deadline(); ok && time.Until(d) <= l.Timeout {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, l.Timeout)
}
