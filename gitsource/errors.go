package gitsource

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/expsync/expsync/gitsource/internal/gitpack"
	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// Kinds of failure. Every error returned by this package is a *RepoError
// that wraps one of these (when known), so callers use errors.Is.
var (
	ErrAuth               = errors.New("authentication failed: check the credentials and their access to the repository")
	ErrRepositoryNotFound = errors.New("repository not found (or not visible with these credentials)")
	ErrEmptyRepository    = errors.New("repository is empty: it has no commits yet")
	ErrRefNotFound        = errors.New("ref not found on the server (deleted or never pushed)")
	ErrCommitNotFound     = errors.New("commit not found at the ref: it moved or was force-pushed; poll again")
	ErrUnreachable        = errors.New("server unreachable: check the host name, port and network")
	ErrTimeout            = errors.New("timed out talking to the server")
	ErrHostKey            = errors.New("SSH host key not trusted: add the server's key to known_hosts")
	ErrCertificate        = errors.New("server certificate not trusted: add its certificate authority to the CA bundle")
	ErrRepoTooLarge       = gitpack.ErrTooLarge // "repository exceeds the size limit"
	ErrUnverified         = errors.New("commit signature not verified")
	ErrPushRejected       = errors.New("push rejected by the server")
	ErrRetriesExhausted   = errors.New("push kept losing races with other writers; retries exhausted")
	ErrBranchDeleted      = errors.New("branch deleted on the server: it is not re-created")
)

// RepoError names the repository (redacted URL) and the operation. Its
// message never contains credentials: the cause's text is scrubbed of the
// configured secrets and of URL userinfo before it is stored.
type RepoError struct {
	Repo string // redacted URL
	Op   string // "poll", "fetch refs/heads/main", "push ...", ...
	Kind error  // one of the Err* kinds above, or nil
	msg  string // scrubbed text of the cause
	hint string // what to do, for kinds that need more than the kind's text
	// cause is kept for errors.Is/As only when its own text is already
	// free of secrets, so unwrapping can never reveal one.
	cause error
}

func (e *RepoError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "repository %s: %s", e.Repo, e.Op)
	if e.Kind != nil {
		b.WriteString(": " + e.Kind.Error())
	}
	if e.msg != "" && (e.Kind == nil || e.msg != e.Kind.Error()) {
		b.WriteString(": " + e.msg)
	}
	if e.hint != "" {
		b.WriteString("; " + e.hint)
	}
	return b.String()
}

func (e *RepoError) Unwrap() []error {
	var errs []error
	if e.Kind != nil {
		errs = append(errs, e.Kind)
	}
	if e.cause != nil {
		errs = append(errs, e.cause)
	}
	return errs
}

// wrap builds a RepoError for err, classifying it and scrubbing secrets.
func (s *Source) wrap(op string, err error) error {
	if err == nil {
		return nil
	}
	var already *RepoError
	if errors.As(err, &already) {
		return err
	}
	red := s.redactor()
	text := red.clean(err.Error())
	re := &RepoError{Repo: s.redacted, Op: op, Kind: classify(err), msg: strings.TrimSuffix(strings.TrimSpace(text), ":")}
	if text == err.Error() {
		re.cause = err
	}
	re.hint = s.hintFor(re.Kind, err)
	return re
}

func (s *Source) newError(op string, kind error, format string, args ...any) error {
	return &RepoError{Repo: s.redacted, Op: op, Kind: kind, msg: s.redactor().clean(fmt.Sprintf(format, args...)),
		hint: s.hintFor(kind, nil)}
}

// hintFor says which limit a timeout hit and what to do about it.
func (s *Source) hintFor(kind, err error) string {
	if kind != ErrTimeout && !(kind == nil && err != nil && errors.Is(err, ErrTimeout)) {
		return ""
	}
	return fmt.Sprintf("limits: %s per operation, %s without progress on a connection: "+
		"check that the server is up and answering (a proxy or firewall that accepts and stays silent looks the same), "+
		"or raise the repository's timeout if it is only slow", s.limits.Timeout, s.limits.IdleTimeout)
}

func classify(err error) error {
	// go-git wraps HTTP client errors in a type without Unwrap.
	var unexpected *plumbing.UnexpectedError
	if errors.As(err, &unexpected) && unexpected.Err != nil {
		if k := classify(unexpected.Err); k != nil {
			return k
		}
	}
	var nm git.NoMatchingRefSpecError
	var netErr net.Error
	var opErr *net.OpError
	var dnsErr *net.DNSError
	msg := err.Error()
	switch {
	case errors.Is(err, ErrAuth), errors.Is(err, ErrRepositoryNotFound), errors.Is(err, ErrEmptyRepository),
		errors.Is(err, ErrRefNotFound), errors.Is(err, ErrCommitNotFound), errors.Is(err, ErrUnreachable),
		errors.Is(err, ErrTimeout), errors.Is(err, ErrHostKey), errors.Is(err, ErrCertificate), errors.Is(err, ErrRepoTooLarge),
		errors.Is(err, ErrUnverified), errors.Is(err, ErrPushRejected), errors.Is(err, ErrRetriesExhausted),
		errors.Is(err, ErrBranchDeleted), errors.Is(err, ErrNotContained),
		errors.Is(err, ErrUnsafeURL):
		return nil // already carries its kind in the chain
	case errors.Is(err, transport.ErrAuthenticationRequired), errors.Is(err, transport.ErrAuthorizationFailed),
		errors.Is(err, transport.ErrInvalidAuthMethod),
		strings.Contains(msg, "unable to authenticate"), strings.Contains(msg, "no supported methods remain"):
		return ErrAuth
	case strings.Contains(msg, "knownhosts:"), strings.Contains(msg, "host key"):
		return ErrHostKey
	case strings.Contains(msg, "x509:"), strings.Contains(msg, "tls: failed to verify"):
		return ErrCertificate
	case errors.Is(err, transport.ErrRepositoryNotFound):
		return ErrRepositoryNotFound
	case errors.Is(err, transport.ErrEmptyRemoteRepository):
		return ErrEmptyRepository
	case errors.As(err, &nm), errors.Is(err, plumbing.ErrReferenceNotFound):
		return ErrRefNotFound
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, os.ErrDeadlineExceeded),
		errors.As(err, &netErr) && netErr.Timeout():
		return ErrTimeout
	case errors.As(err, &dnsErr), errors.As(err, &opErr),
		strings.Contains(msg, "connection refused"), strings.Contains(msg, "no such host"):
		return ErrUnreachable
	}
	return nil
}
