package forge

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// docAPI is an in-memory forge that answers the requests of one forge's
// documented REST API (GitHub's or GitLab's) and fails the test on any
// request the documentation does not define: a wrong method, path, header
// or body shape. It keeps statuses and comments so tests assert state, not
// call counts alone.
type docAPI struct {
	t     *testing.T
	token string
	me    string

	mu       sync.Mutex
	statuses []map[string]any // request bodies, as sent
	comments []apiComment
	nextID   int64
	requests []string // "METHOD path"
	// fail, when set, may answer a request instead: status and headers;
	// apply tells whether the request still takes effect (a 5xx after a
	// comment was stored).
	fail func(r *http.Request, n int) (status int, hdr http.Header, apply bool)
	// prs are the pull requests the API knows: number -> (base, head).
	prs map[int][2]string
}

type apiComment struct {
	ID     int64
	Number int
	Author string
	Body   string
}

func newDocAPI(t *testing.T, token string) *docAPI {
	return &docAPI{t: t, token: token, me: "expsync-bot", nextID: 1000, prs: map[int][2]string{}}
}

func (a *docAPI) addComment(number int, author, body string) int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.nextID++
	a.comments = append(a.comments, apiComment{ID: a.nextID, Number: number, Author: author, Body: body})
	return a.nextID
}

func (a *docAPI) commentsOn(number int, author string) []apiComment {
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []apiComment
	for _, c := range a.comments {
		if c.Number == number && (author == "" || c.Author == author) {
			out = append(out, c)
		}
	}
	return out
}

func (a *docAPI) requestLog() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.requests...)
}

// route is one documented endpoint.
type route struct {
	method string
	path   *regexp.Regexp
	// body lists the JSON fields a request must carry (nil: no body).
	body []string
	// optional JSON fields it may carry besides.
	optional []string
	handle   func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any)
}

func (a *docAPI) server(routes []route, auth func(r *http.Request) bool) *httptest.Server {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a.mu.Lock()
		a.requests = append(a.requests, r.Method+" "+r.URL.EscapedPath())
		n := len(a.requests)
		fail := a.fail
		a.mu.Unlock()
		if !auth(r) {
			a.t.Errorf("%s %s: missing or wrong authentication header", r.Method, r.URL)
			http.Error(w, `{"message":"Bad credentials"}`, http.StatusUnauthorized)
			return
		}
		apply := true
		var failStatus int
		var failHdr http.Header
		if fail != nil {
			failStatus, failHdr, apply = fail(r, n)
		}
		for _, rt := range routes {
			m := rt.path.FindStringSubmatch(r.URL.EscapedPath())
			if m == nil || rt.method != r.Method {
				continue
			}
			body := a.checkBody(r, rt)
			if failStatus != 0 {
				if apply {
					rt.handle(a, httptest.NewRecorder(), r, m, body)
				}
				for k, v := range failHdr {
					w.Header()[k] = v
				}
				// A proxy page that echoes what it was sent, token included.
				w.WriteHeader(failStatus)
				fmt.Fprintf(w, "<html>upstream error for %s (auth %q)</html>", r.URL.Path, r.Header.Get("Authorization")+r.Header.Get("Private-Token"))
				return
			}
			rt.handle(a, w, r, m, body)
			return
		}
		a.t.Errorf("request not in the documented API: %s %s", r.Method, r.URL)
		http.Error(w, `{"message":"Not Found"}`, http.StatusNotFound)
	}))
	a.t.Cleanup(srv.Close)
	return srv
}

// checkBody decodes a JSON body and checks its fields against the route.
func (a *docAPI) checkBody(r *http.Request, rt route) map[string]any {
	data, _ := io.ReadAll(r.Body)
	if rt.body == nil {
		if len(data) != 0 {
			a.t.Errorf("%s %s: unexpected body %s", r.Method, r.URL.Path, data)
		}
		return nil
	}
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		a.t.Errorf("%s %s: Content-Type %q, want application/json", r.Method, r.URL.Path, ct)
	}
	var body map[string]any
	if err := json.Unmarshal(data, &body); err != nil {
		a.t.Errorf("%s %s: body is not a JSON object: %v", r.Method, r.URL.Path, err)
		return nil
	}
	allowed := map[string]bool{}
	for _, f := range append(append([]string(nil), rt.body...), rt.optional...) {
		allowed[f] = true
	}
	for _, f := range rt.body {
		if _, ok := body[f]; !ok {
			a.t.Errorf("%s %s: body lacks %q: %s", r.Method, r.URL.Path, f, data)
		}
	}
	for f := range body {
		if !allowed[f] {
			a.t.Errorf("%s %s: body field %q is not in the documented API", r.Method, r.URL.Path, f)
		}
	}
	return body
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// page cuts items by the documented per_page and page query parameters.
func page[T any](r *http.Request, items []T, maxPer int) ([]T, int, int) {
	per, _ := strconv.Atoi(r.URL.Query().Get("per_page"))
	if per <= 0 {
		per = 20
	}
	if per > maxPer {
		per = maxPer
	}
	p, _ := strconv.Atoi(r.URL.Query().Get("page"))
	if p <= 0 {
		p = 1
	}
	lo, hi := (p-1)*per, p*per
	if lo > len(items) {
		lo = len(items)
	}
	if hi > len(items) {
		hi = len(items)
	}
	next := 0
	if hi < len(items) {
		next = p + 1
	}
	return items[lo:hi], p, next
}

func mustAtoi(t *testing.T, s string) int {
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatalf("not a number in a path: %q", s)
	}
	return n
}

// noSleep records the waits a retry would have slept.
type noSleep struct {
	mu    sync.Mutex
	waits []time.Duration
}

func (s *noSleep) sleep(ctx context.Context, d time.Duration) error {
	s.mu.Lock()
	s.waits = append(s.waits, d)
	s.mu.Unlock()
	return ctx.Err()
}

func (s *noSleep) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.waits)
}
