package gitsource

import (
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
)

// ErrUnsafeURL is wrapped by every URL refusal.
var ErrUnsafeURL = errors.New("unsafe repository URL")

// URLPolicy says which URL forms a deployment accepts.
type URLPolicy struct {
	// ControllerMode refuses file:// URLs and bare local paths: in a cluster a
	// repository URL comes from a user's object and must not read the
	// controller's own file system.
	ControllerMode bool
	// AllowHTTP permits plain http:// (tests and private networks).
	AllowHTTP bool
}

// remoteHelperSyntax matches Git's "<transport>::<address>" form (ext::,
// fd::, ...), which makes git run arbitrary commands.
var remoteHelperSyntax = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9+.-]*::`)

// scpLike matches "user@host:path" (SSH without a scheme).
var scpLike = regexp.MustCompile(`^(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+:[^/\\]`)

// ValidateURL refuses URLs that could run commands, be read as options,
// read local files in controller mode, or carry a password inline.
func ValidateURL(raw string, p URLPolicy) error {
	refuse := func(why string) error {
		return fmt.Errorf("%w %q: %s", ErrUnsafeURL, RedactURL(raw), why)
	}
	switch {
	case raw == "":
		return refuse("empty URL")
	case strings.TrimSpace(raw) != raw:
		return refuse("leading or trailing white space")
	case strings.HasPrefix(raw, "-"):
		return refuse("a URL starting with '-' would be read as a command-line option")
	case strings.ContainsAny(raw, "\x00\r\n\t"):
		return refuse("control characters are not allowed")
	case remoteHelperSyntax.MatchString(raw):
		return refuse("remote-helper syntax ('<transport>::') such as ext:: can run commands; use https:// or ssh://")
	case scpPassword(raw):
		return refuse("credentials inside the URL are refused; configure them as authentication instead")
	}
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || len(u.Scheme) == 1 /* C:\ on Windows */ {
		if scpLike.MatchString(raw) && !strings.HasPrefix(raw, "/") {
			return nil // user@host:path is SSH
		}
		if p.ControllerMode {
			return refuse("local paths are refused in controller mode; use https:// or ssh://")
		}
		return nil
	}
	if u.Opaque != "" && scpLike.MatchString(raw) {
		return nil // host:path is SSH
	}
	switch strings.ToLower(u.Scheme) {
	case "https", "ssh", "git":
	case "http":
		if !p.AllowHTTP {
			return refuse("plain http:// sends credentials unencrypted; use https:// (or allow http explicitly)")
		}
	case "file":
		if p.ControllerMode {
			return refuse("file:// URLs are refused in controller mode; use https:// or ssh://")
		}
	default:
		return refuse(fmt.Sprintf("scheme %q is not supported; use https:// or ssh://", u.Scheme))
	}
	if _, has := u.User.Password(); has {
		return refuse("credentials inside the URL are refused; configure them as authentication instead")
	}
	if u.Host == "" && strings.ToLower(u.Scheme) != "file" {
		return refuse("no host")
	}
	if strings.HasPrefix(u.Host, "-") {
		return refuse("a host starting with '-' would be read as an option")
	}
	return nil
}

// scpPassword reports an scp-like URL whose user carries a password
// ("user:secret@host:path", as go-git splits it: the user is what comes
// before the first '@'); url.Parse reads it as an opaque URL, not as
// userinfo.
func scpPassword(raw string) bool {
	user, rest, ok := strings.Cut(raw, "@")
	return ok && !strings.Contains(raw, "://") && strings.Contains(user, ":") && !strings.Contains(user, "/") &&
		strings.Contains(rest, ":")
}

// RedactURL returns raw without passwords, tokens (userinfo of http(s) URLs,
// query strings, fragments). It never fails: an unparsable URL is reduced to
// what is certainly safe. Every error, log line and status in this package
// names a repository through RedactURL.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Opaque != "" {
		// scp-like (user@host:path) or a local path: drop anything before
		// an '@' that contains a ':' (user:password@host:path).
		if at := strings.LastIndex(raw, "@"); at >= 0 && strings.Contains(raw[:at], ":") {
			return "<redacted>@" + raw[at+1:]
		}
		return raw
	}
	if u.User != nil {
		switch strings.ToLower(u.Scheme) {
		case "ssh", "git+ssh", "ssh+git":
			u.User = url.User(u.User.Username()) // a login name, not a secret
		default:
			u.User = nil
		}
	}
	u.RawQuery = ""
	u.ForceQuery = false
	u.Fragment = ""
	u.RawFragment = ""
	return u.String()
}

// urlSecrets lists what RedactURL drops from a URL besides its userinfo:
// the query string and the fragment (where some servers take a token,
// ?private_token=...), raw and decoded, and each query value. go-git puts
// them in the path it asks for, so the HTTP client's errors ("Get
// \"https://host/repo.git?private_token=.../info/refs...\": ...") quote
// them back.
func urlSecrets(raw string) []string {
	u, err := url.Parse(raw)
	if err != nil {
		return nil
	}
	var out []string
	for _, s := range []string{u.RawQuery, u.EscapedFragment(), u.Fragment} {
		if s != "" {
			out = append(out, s)
		}
	}
	if q, err := url.ParseQuery(u.RawQuery); err == nil {
		for _, vs := range q {
			for _, v := range vs {
				if v != "" {
					out = append(out, v, url.QueryEscape(v))
				}
			}
		}
	}
	// Longest first: a value inside the whole query is replaced with it.
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return out
}

// redactor removes known secrets and any userinfo from free text, for
// messages that come back from servers or from go-git.
type redactor struct{ secrets []string }

var userinfoInText = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://)[^/@\s]*@`)

func (r redactor) clean(s string) string {
	for _, sec := range r.secrets {
		if len(sec) >= 3 {
			s = strings.ReplaceAll(s, sec, "<redacted>")
		}
	}
	return userinfoInText.ReplaceAllString(s, "${1}<redacted>@")
}
