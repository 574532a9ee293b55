package forge

import (
	"context"
	"io"
	"math/rand/v2"
	"net/http"
	"strconv"
	"time"
)

// RetryPolicy bounds the retries of one request.
type RetryPolicy struct {
	// Attempts per request, the first included (0: 5).
	Attempts int
	// Base is the first backoff, doubled at each attempt up to Max
	// (0: 1 s and 30 s), with jitter.
	Base, Max time.Duration
	// MaxWait caps what a Retry-After or rate-limit reset header may make
	// a request wait (0: 2 minutes). A forge asking for longer gets the
	// response back: the caller tries again later instead of holding a
	// goroutine for an hour.
	MaxWait time.Duration
	// Sleep waits d or until ctx ends (nil: a timer); tests shorten it.
	Sleep func(ctx context.Context, d time.Duration) error
}

func (p RetryPolicy) withDefaults() RetryPolicy {
	if p.Attempts <= 0 {
		p.Attempts = 5
	}
	if p.Base <= 0 {
		p.Base = time.Second
	}
	if p.Max <= 0 {
		p.Max = 30 * time.Second
	}
	if p.MaxWait <= 0 {
		p.MaxWait = 2 * time.Minute
	}
	if p.Sleep == nil {
		p.Sleep = sleep
	}
	return p
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// retryTransport retries a request the forge refused for a reason that
// passes: rate limits (any method: the request was not applied) and server
// errors or dropped connections (only requests safe to repeat: not a POST
// that creates something, unless the caller marked it with retryablePost).
type retryTransport struct {
	next   http.RoundTripper
	policy RetryPolicy
	now    func() time.Time
}

type retryablePostKey struct{}

// retryablePost marks ctx's POST requests as safe to repeat (a commit
// status: a second one with the same context only replaces the first).
func retryablePost(ctx context.Context) context.Context {
	return context.WithValue(ctx, retryablePostKey{}, true)
}

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	next := t.next
	if next == nil {
		next = http.DefaultTransport
	}
	ctx := req.Context()
	for attempt := 1; ; attempt++ {
		r := req
		if attempt > 1 {
			if req.Body != nil && req.GetBody == nil {
				return nil, errNoRewind
			}
			r = req.Clone(ctx)
			if req.GetBody != nil {
				body, err := req.GetBody()
				if err != nil {
					return nil, err
				}
				r.Body = body
			}
		}
		resp, err := next.RoundTrip(r)
		wait, retry := t.decide(req, resp, err, attempt)
		if !retry || attempt >= t.policy.Attempts {
			return resp, err
		}
		if resp != nil {
			// Drain a little so the connection can be reused.
			_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
			resp.Body.Close()
		}
		if err := t.policy.Sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

type rewindError struct{}

func (rewindError) Error() string { return "forge request: the body cannot be sent again" }

var errNoRewind = rewindError{}

// decide says whether to retry and after how long.
func (t *retryTransport) decide(req *http.Request, resp *http.Response, err error, attempt int) (time.Duration, bool) {
	backoff := t.backoff(attempt)
	safe := req.Method != http.MethodPost || req.Context().Value(retryablePostKey{}) != nil
	if err != nil {
		return backoff, safe && req.Context().Err() == nil
	}
	switch {
	case resp.StatusCode == http.StatusTooManyRequests:
		return t.serverWait(resp, backoff)
	case resp.StatusCode == http.StatusForbidden && rateLimited(resp):
		return t.serverWait(resp, backoff)
	case resp.StatusCode >= 500 && resp.StatusCode != http.StatusNotImplemented:
		if !safe {
			return 0, false
		}
		if w, ok := t.serverWait(resp, backoff); ok && w > backoff {
			return w, true
		}
		return backoff, true
	}
	return 0, false
}

// rateLimited tells GitHub's rate-limit 403 (primary: no requests left;
// secondary: a Retry-After) from a 403 that means "not allowed".
func rateLimited(resp *http.Response) bool {
	return resp.Header.Get("Retry-After") != "" || resp.Header.Get("X-RateLimit-Remaining") == "0" ||
		resp.Header.Get("RateLimit-Remaining") == "0"
}

// serverWait is how long the forge asked to wait (Retry-After in seconds
// or as a date, else a rate-limit reset time), at least backoff; a wait
// longer than MaxWait is not waited for.
func (t *retryTransport) serverWait(resp *http.Response, backoff time.Duration) (time.Duration, bool) {
	now := time.Now
	if t.now != nil {
		now = t.now
	}
	wait := backoff
	if ra := resp.Header.Get("Retry-After"); ra != "" {
		if s, err := strconv.Atoi(ra); err == nil && s >= 0 {
			wait = time.Duration(s) * time.Second
		} else if at, err := http.ParseTime(ra); err == nil {
			wait = at.Sub(now())
		}
	} else {
		for _, h := range []string{"X-RateLimit-Reset", "RateLimit-Reset"} {
			if v := resp.Header.Get(h); v != "" {
				if s, err := strconv.ParseInt(v, 10, 64); err == nil {
					if s > 1e9 { // a Unix time (GitHub, GitLab); else seconds
						wait = time.Unix(s, 0).Sub(now()) + time.Second
					} else {
						wait = time.Duration(s) * time.Second
					}
				}
				break
			}
		}
	}
	if wait < backoff {
		wait = backoff
	}
	if wait > t.policy.MaxWait {
		return 0, false
	}
	return wait, true
}

func (t *retryTransport) backoff(attempt int) time.Duration {
	d := t.policy.Base << (attempt - 1)
	if d > t.policy.Max || d <= 0 {
		d = t.policy.Max
	}
	// Up to a quarter more, so many clients do not retry in step.
	return d + time.Duration(rand.Int64N(int64(d)/4+1))
}
