package kubetest

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestRequestKind(t *testing.T) {
	for target, want := range map[string]string{
		"GET /api/v1/namespaces/ns/secrets/git":                                          "GET secrets",
		"GET /api/v1/namespaces/ns/pods":                                                 "LIST pods",
		"GET /api/v1/namespaces/ns/events?watch=true":                                    "WATCH events",
		"POST /apis/batch/v1/namespaces/ns/jobs":                                         "POST jobs",
		"PATCH /apis/expsync.dev/v1alpha1/namespaces/ns/experimentrepositories/r/status": "PATCH experimentrepositories/status",
		"GET /apis/expsync.dev/v1alpha1/experimentrepositories":                          "LIST experimentrepositories",
		"DELETE /apis/batch/v1/namespaces/ns/jobs/j":                                     "DELETE jobs",
		"PUT /apis/coordination.k8s.io/v1/namespaces/ns/leases/l":                        "PUT leases",
	} {
		var method, path string
		for i := range target {
			if target[i] == ' ' {
				method, path = target[:i], target[i+1:]
				break
			}
		}
		if got := RequestKind(httptest.NewRequest(method, path, nil)); got != want {
			t.Errorf("%s: %q, want %q", target, got, want)
		}
	}
}

func TestRequestCounter(t *testing.T) {
	var c RequestCounter
	rt := c.Wrap(roundTripFunc(func(*http.Request) (*http.Response, error) { return &http.Response{StatusCode: 200}, nil }))
	for _, r := range []*http.Request{
		httptest.NewRequest("POST", "/apis/batch/v1/namespaces/ns/jobs", nil),
		httptest.NewRequest("POST", "/apis/batch/v1/namespaces/ns/jobs", nil),
		httptest.NewRequest("GET", "/api/v1/namespaces/ns/secrets/s", nil),
	} {
		if _, err := rt.RoundTrip(r); err != nil {
			t.Fatal(err)
		}
	}
	before := map[string]int{"POST jobs": 1}
	if d := cmp.Diff(map[string]int{"POST jobs": 1, "GET secrets": 1}, Diff(before, c.Snapshot())); d != "" {
		t.Errorf("Diff (-want +got):\n%s", d)
	}
	if c.Writes() != 2 || Sum(c.Snapshot()) != 3 || c.String() != "GET secrets=1 POST jobs=2" {
		t.Errorf("writes %d, sum %d, %q", c.Writes(), Sum(c.Snapshot()), c.String())
	}
}
