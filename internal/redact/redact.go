// Package redact removes secrets from text that people or machines will
// read: run logs' messages, expsync's own log lines, errors naming a URL.
// One place, so a run's log, serve's log and the controller's log agree on
// what a redacted value looks like.
package redact

import (
	"sort"
	"strconv"
	"strings"
)

// Marker replaces a secret.
const Marker = "[REDACTED]"

// Text replaces every occurrence of each secret in s with Marker: raw, and
// as %q writes it (an error that quotes a value). Longer secrets are
// replaced first, so a secret that contains another leaves no tail.
func Text(s string, secrets []string) string {
	for _, v := range secrets {
		if v == "" {
			continue
		}
		s = strings.ReplaceAll(s, v, Marker)
		if q := strings.Trim(strconv.Quote(v), `"`); q != v {
			s = strings.ReplaceAll(s, q, Marker)
		}
	}
	return s
}

// LongestFirst returns secrets without empty and repeated values, longest
// first, the order Text wants.
func LongestFirst(secrets []string) []string {
	out := make([]string, 0, len(secrets))
	seen := map[string]bool{}
	for _, s := range secrets {
		if s != "" && !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// URL drops credentials (user:password@), the query and the fragment from
// a URL for messages. It never fails: it works on the text, so a URL that
// does not parse loses them too.
func URL(u string) string {
	if i := strings.IndexAny(u, "?#"); i >= 0 {
		u = u[:i]
	}
	if i := strings.Index(u, "://"); i >= 0 {
		rest := u[i+3:]
		if at := strings.LastIndex(rest, "@"); at >= 0 && !strings.Contains(rest[:at], "/") {
			u = u[:i+3] + rest[at+1:]
		}
	}
	return u
}

// Userinfo replaces the password of every scheme://user:password@ in s
// (a URL quoted inside an error from a library) with Marker; the user name
// stays.
func Userinfo(s string) string {
	if !strings.Contains(s, "://") {
		return s
	}
	var b strings.Builder
	for {
		i := strings.Index(s, "://")
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		b.WriteString(s[:i+3])
		s = s[i+3:]
		// The authority ends at the first '/', space, quote or end.
		end := strings.IndexAny(s, "/ \t\n\"'`<>")
		if end < 0 {
			end = len(s)
		}
		auth := s[:end]
		if at := strings.LastIndex(auth, "@"); at >= 0 {
			if colon := strings.Index(auth[:at], ":"); colon >= 0 {
				b.WriteString(auth[:colon+1])
				b.WriteString(Marker)
				b.WriteString(auth[at:])
				s = s[end:]
				continue
			}
		}
		b.WriteString(auth)
		s = s[end:]
	}
}
