package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"
)

// Kind names a forge's API.
type Kind string

const (
	Gitea   Kind = "gitea"
	Forgejo Kind = "forgejo" // Gitea's API
	GitHub  Kind = "github"
	GitLab  Kind = "gitlab"
)

// Kinds lists the forges New accepts.
var Kinds = []Kind{Gitea, Forgejo, GitHub, GitLab}

// Config says which forge to talk to and as whom.
type Config struct {
	Kind Kind
	// URL is the forge's base URL: Gitea's and GitLab's root
	// (https://gitea.example, https://gitlab.com); GitHub's API
	// (https://api.github.com/ by default, https://HOST/api/v3/ for
	// GitHub Enterprise). It must not carry credentials.
	URL string
	// Repository is the repository's path on the forge: "owner/name"
	// (GitLab: "group/subgroup/project").
	Repository string
	// WebURL is where the forge's pages are, for links (default: URL;
	// GitHub: https://github.com, or the Enterprise host).
	WebURL string
	// Token authenticates every request. It is never logged and never
	// part of an error.
	Token string
	// HTTPClient is the client requests go through (nil: one with a 30 s
	// timeout per request); its transport is wrapped with Retry.
	HTTPClient *http.Client
	Retry      RetryPolicy
}

// State is a commit status's state.
type State string

const (
	StatePending State = "pending"
	StateSuccess State = "success"
	StateFailure State = "failure"
	StateError   State = "error"
)

// Status is one commit status.
type Status struct {
	Commit string
	// Context names the status among the commit's others ("expsync").
	Context     string
	State       State
	Description string // clipped to MaxDescriptionRunes
	TargetURL   string // optional
}

// MaxDescriptionRunes is what GitHub accepts in a status description; the
// others are clipped the same way so a status reads alike everywhere.
const MaxDescriptionRunes = 140

// PullRequest is what a report needs of a pull request.
type PullRequest struct {
	Number int
	// BaseBranch is the branch the pull request targets (its short name).
	BaseBranch string
	HeadCommit string
	// MergeBase is the best common ancestor of the head and the base
	// branch, as the forge computed it ("" when it did not say).
	MergeBase string
	URL       string
}

// Comment is the comment UpsertComment left on a pull request.
type Comment struct {
	ID  int64
	URL string
	// Created: there was none, it was made. Edited: it was found and its
	// body changed. Neither: it was found already holding the body.
	Created, Edited bool
}

// Client is a forge's API as reports use it.
type Client interface {
	Kind() Kind
	// SetStatus sets a commit status (a later one with the same context
	// replaces it on the forge's pages).
	SetStatus(ctx context.Context, s Status) error
	// UpsertComment makes the pull request hold exactly one comment with
	// marker: it edits the one found (when its body differs) or creates it.
	// body must contain marker (see Marker).
	UpsertComment(ctx context.Context, number int, marker, body string) (Comment, error)
	// PullRequest reads a pull request (GitLab: a merge request, by IID).
	PullRequest(ctx context.Context, number int) (PullRequest, error)
	// MaxCommentBytes is the largest comment body the forge accepts.
	MaxCommentBytes() int
	// FileURL is the web page of a file (or folder) on a branch.
	FileURL(branch, path string) string
}

// New returns the client of cfg's forge.
func New(cfg Config) (Client, error) {
	if cfg.Token == "" {
		return nil, fmt.Errorf("forge %s: no token: set the token's environment variable (or Secret) the configuration names", cfg.Kind)
	}
	if err := checkURL(cfg); err != nil {
		return nil, err
	}
	owner, name, err := splitRepository(cfg)
	if err != nil {
		return nil, err
	}
	hc := cfg.httpClient()
	red := redactor{secret: cfg.Token}
	switch cfg.Kind {
	case Gitea, Forgejo:
		return newGitea(cfg, hc, owner, name, red)
	case GitHub:
		return newGitHub(cfg, hc, owner, name, red)
	case GitLab:
		return newGitLab(cfg, hc, red)
	default:
		return nil, fmt.Errorf("forge kind %q: use one of %v", cfg.Kind, Kinds)
	}
}

func checkURL(cfg Config) error {
	if cfg.URL == "" {
		if cfg.Kind == GitHub {
			return nil // api.github.com
		}
		return fmt.Errorf("forge %s: its URL is required (for example https://%s.example)", cfg.Kind, cfg.Kind)
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("forge %s: URL must be http(s)://HOST[/PATH]", cfg.Kind)
	}
	if u.User != nil {
		// Never echo the URL: its user info may be the token.
		return fmt.Errorf("forge %s: the URL carries credentials; give the token through the token variable or Secret instead", cfg.Kind)
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return fmt.Errorf("forge %s: URL %s://%s%s must not have a query or fragment", cfg.Kind, u.Scheme, u.Host, u.Path)
	}
	return nil
}

func splitRepository(cfg Config) (owner, name string, err error) {
	repo := strings.Trim(cfg.Repository, "/")
	parts := strings.Split(repo, "/")
	for _, p := range parts {
		if p == "" || p == "." || p == ".." {
			return "", "", fmt.Errorf("forge %s: repository %q: want OWNER/NAME", cfg.Kind, cfg.Repository)
		}
	}
	if len(parts) < 2 || (len(parts) > 2 && cfg.Kind != GitLab) {
		return "", "", fmt.Errorf("forge %s: repository %q: want OWNER/NAME", cfg.Kind, cfg.Repository)
	}
	return strings.Join(parts[:len(parts)-1], "/"), parts[len(parts)-1], nil
}

func (cfg Config) httpClient() *http.Client {
	hc := http.Client{Timeout: 30 * time.Second}
	if cfg.HTTPClient != nil {
		hc = *cfg.HTTPClient
	}
	hc.Transport = &retryTransport{next: hc.Transport, policy: cfg.Retry.withDefaults()}
	return &hc
}

// webBase is where the forge's pages are.
func (cfg Config) webBase() string {
	if cfg.WebURL != "" {
		return strings.TrimSuffix(cfg.WebURL, "/")
	}
	switch {
	case cfg.Kind == GitHub && (cfg.URL == "" || strings.Contains(cfg.URL, "api.github.com")):
		return "https://github.com"
	case cfg.Kind == GitHub:
		return strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(cfg.URL, "/"), "/api/v3"), "/")
	}
	return strings.TrimSuffix(cfg.URL, "/")
}

// pathURL escapes each segment of a branch or path for a URL.
func pathURL(p string) string {
	parts := strings.Split(p, "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return strings.Join(parts, "/")
}

// clipRunes shortens s to n runes, marking the cut.
func clipRunes(s string, n int) string {
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}

// ErrNotFound is wrapped by errors for a pull request or repository the
// forge does not know (or the token may not see).
var ErrNotFound = errors.New("not found on the forge")
