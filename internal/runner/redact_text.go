package runner

import (
	"strconv"
	"strings"
)

// redactText removes secret values (longest first, as r.secrets is) from a
// message that quotes what the run wrote — the keys of its metrics file —
// before it is recorded: raw, and as %q writes them.
func redactText(s string, secrets []string) string {
	for _, v := range secrets {
		if v == "" {
			continue
		}
		s = strings.ReplaceAll(s, v, "[REDACTED]")
		if q := strings.Trim(strconv.Quote(v), `"`); q != v {
			s = strings.ReplaceAll(s, q, "[REDACTED]")
		}
	}
	return s
}
