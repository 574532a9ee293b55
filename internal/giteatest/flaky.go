package giteatest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"sync/atomic"
	"testing"
)

// FlakyProxy stands in front of a forge: while Down, it answers every
// request 500 or 429 (with Retry-After: 1), alternating, and echoes the
// request's Authorization header in its error page, as a misconfigured
// proxy might (a client must not put that page's token in a log);
// otherwise it passes requests through.
type FlakyProxy struct {
	URL      string // http://127.0.0.1:PORT (no trailing slash)
	Down     atomic.Bool
	Failures atomic.Int64 // requests answered with an error
}

// NewFlakyProxy starts a FlakyProxy in front of target (up), stopped when
// the test ends.
func NewFlakyProxy(t testing.TB, target string) *FlakyProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	f := &FlakyProxy{}
	proxy := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if f.Down.Load() {
			if n := f.Failures.Add(1); n%2 == 0 {
				w.Header().Set("Retry-After", "1")
				w.WriteHeader(http.StatusTooManyRequests)
			} else {
				w.WriteHeader(http.StatusInternalServerError)
			}
			fmt.Fprintf(w, "<html>upstream down; you sent %s</html>", r.Header.Get("Authorization"))
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	f.URL = srv.URL
	return f
}
