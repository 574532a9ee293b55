package gitsource

import (
	"context"
	"testing"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
)

// BenchmarkPollHTTPBoundedVsKeepAlive measures what the bounded HTTP
// transport costs an unchanged poll: a new connection per request (no
// keep-alive) against go-git's default client reusing one. Loopback and
// plain HTTP, so it shows the per-connection overhead on our side, not a
// TLS handshake over a real network (which adds one round trip or two).
//
//	go test -run '^$' -bench PollHTTPBounded -benchtime 200x ./gitsource/
func BenchmarkPollHTTPBoundedVsKeepAlive(b *testing.B) {
	srv := newServer(b)
	srv.newRepo("kb")
	p := newPeer(b, srv.peerURL("kb"))
	p.commit("one", map[string]string{"a": "1"})
	p.push("main")
	src := newSource(b, srv, "kb")
	ctx := context.Background()
	poll := func() time.Duration {
		t0 := time.Now()
		changes, err := src.Poll(ctx)
		if err != nil || len(changes) != 0 {
			b.Fatalf("unchanged poll = %v, %v", changes, err)
		}
		return time.Since(t0)
	}
	if _, err := src.Poll(ctx); err != nil {
		b.Fatal(err)
	}
	bounded := githttp.NewClient(&httpClientBounded)
	keepAlive := githttp.DefaultClient
	defer client.InstallProtocol("http", bounded)
	var ours, theirs time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		client.InstallProtocol("http", bounded)
		ours += poll()
		client.InstallProtocol("http", keepAlive)
		theirs += poll()
	}
	b.StopTimer()
	b.ReportMetric(float64(ours.Microseconds())/float64(b.N), "bounded-µs/poll")
	b.ReportMetric(float64(theirs.Microseconds())/float64(b.N), "keepalive-µs/poll")
	b.ReportMetric(float64(ours)/float64(theirs), "ratio")
}
