package gitsource

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// TestErrorsHideATokenInTheURLsQuery: a URL may carry its token in the
// query string (https://host/repo.git?private_token=...); RedactURL drops
// it, and so must every error that quotes the URL back from go-git or the
// HTTP client (a refused connection, a timeout).
func TestErrorsHideATokenInTheURLsQuery(t *testing.T) {
	const token = "qTok-9f8e7d6c5b4a"
	closed, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := closed.Addr().String()
	closed.Close()
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	for _, c := range []struct {
		name, url string
		want      error
	}{
		{"unreachable", "http://" + addr + "/x.git?private_token=" + token, ErrUnreachable},
		{"unreachable, token in the fragment", "http://" + addr + "/x.git#" + token, ErrUnreachable},
		{"timeout", "http://" + silent.Addr().String() + "/x.git?private_token=" + token, ErrTimeout},
	} {
		t.Run(c.name, func(t *testing.T) {
			src, err := New(Repository{URL: c.url, Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
				URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{Timeout: 300 * time.Millisecond}}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			for _, op := range []struct {
				name string
				run  func() error
			}{
				{"poll", func() error { _, err := src.Poll(context.Background()); return err }},
				{"snapshot", func() error { _, err := src.Snapshot(context.Background(), "main", ""); return err }},
				{"commit", func() error {
					_, err := src.CommitBack(context.Background(), CommitRequest{Branch: "main", Message: "m",
						Author: Signature{Name: "a", Email: "a@example.org"}, Files: map[string][]byte{"a": []byte("a")}}, nil)
					return err
				}},
			} {
				err := op.run()
				if !errors.Is(err, c.want) {
					t.Errorf("%s: err = %v, want %v", op.name, err, c.want)
				}
				if err != nil && strings.Contains(err.Error(), token) {
					t.Errorf("%s: error shows the token: %v", op.name, err)
				}
				assertNoSecret(t, err, token)
			}
		})
	}
}
