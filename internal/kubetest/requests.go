package kubetest

import (
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
)

// RequestCounter counts the API requests made through the rest.Configs it
// wraps (cfg.Wrap(counter.Wrap)), by verb and resource: "POST jobs",
// "LIST pods", "WATCH events", "PATCH experimentrepositories/status" —
// what a run costs the API server, counted rather than estimated.
type RequestCounter struct {
	mu     sync.Mutex
	counts map[string]int
}

// Wrap counts the requests going through rt.
func (c *RequestCounter) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		c.mu.Lock()
		if c.counts == nil {
			c.counts = map[string]int{}
		}
		c.counts[RequestKind(req)]++
		c.mu.Unlock()
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Snapshot returns the counts so far.
func (c *RequestCounter) Snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make(map[string]int, len(c.counts))
	for k, v := range c.counts {
		out[k] = v
	}
	return out
}

// Writes counts the requests that change something.
func (c *RequestCounter) Writes() int { return Writes(c.Snapshot()) }

// String lists the counts by kind: "GET secrets=2 POST jobs=1".
func (c *RequestCounter) String() string {
	m := c.Snapshot()
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		fmt.Fprintf(&b, "%s=%d ", k, m[k])
	}
	return strings.TrimSpace(b.String())
}

// RequestKind names a request by verb (LIST and WATCH told from GET) and
// resource, with its subresource (jobs/status).
func RequestKind(req *http.Request) string {
	parts := strings.Split(strings.Trim(req.URL.Path, "/"), "/")
	rest := parts
	switch {
	case len(parts) >= 2 && parts[0] == "api":
		rest = parts[2:]
	case len(parts) >= 3 && parts[0] == "apis":
		rest = parts[3:]
	}
	if len(rest) >= 3 && rest[0] == "namespaces" {
		rest = rest[2:]
	}
	resource, named := "", false
	if len(rest) > 0 {
		resource, named = rest[0], len(rest) > 1
	}
	if len(rest) > 2 {
		resource += "/" + rest[2]
	}
	verb := req.Method
	switch {
	case req.Method == http.MethodGet && req.URL.Query().Get("watch") == "true":
		verb = "WATCH"
	case req.Method == http.MethodGet && !named:
		verb = "LIST"
	}
	return verb + " " + resource
}

// Writes counts the requests of m that change something (POST, PUT,
// PATCH, DELETE).
func Writes(m map[string]int) int {
	n := 0
	for k, v := range m {
		switch strings.SplitN(k, " ", 2)[0] {
		case http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete:
			n += v
		}
	}
	return n
}

// Sum counts all the requests of m.
func Sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// Diff is after minus before, without zeros.
func Diff(before, after map[string]int) map[string]int {
	out := map[string]int{}
	for k, v := range after {
		if d := v - before[k]; d != 0 {
			out[k] = d
		}
	}
	return out
}

// StaticExpsync builds, once per test binary, the static expsync binary
// that the runner image holds (what the stand-in kubelet runs in a pod).
var StaticExpsync = sync.OnceValues(func() (string, error) {
	dir, err := os.MkdirTemp("", "expsync-runner-bin-")
	if err != nil {
		return "", err
	}
	bin := filepath.Join(dir, "expsync")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/expsync/expsync/cmd/expsync")
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build expsync: %v\n%s", err, out)
	}
	return bin, nil
})
