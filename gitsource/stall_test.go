package gitsource

import (
	"context"
	"errors"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	neturl "net/url"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"
)

// stallServer is a loopback TCP server that accepts connections and never
// finishes answering: it reads what the client sends and writes
// only its fixed prefix (nothing, or the start of an HTTP response). It
// counts open connections, so a test proves the client closed its side.
type stallServer struct {
	ln     net.Listener
	prefix string

	mu    sync.Mutex
	conns map[net.Conn]bool
	wg    sync.WaitGroup
}

func newStallServer(t *testing.T, prefix string) *stallServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &stallServer{ln: ln, prefix: prefix, conns: map[net.Conn]bool{}}
	s.wg.Add(1)
	go s.serve()
	t.Cleanup(s.close)
	return s
}

func (s *stallServer) serve() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns[c] = true
		s.mu.Unlock()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			defer func() {
				s.mu.Lock()
				delete(s.conns, c)
				s.mu.Unlock()
				c.Close()
			}()
			if s.prefix != "" {
				// Answer only once the request arrived, like a server
				// that starts a response and then hangs.
				buf := make([]byte, 4096)
				if _, err := c.Read(buf); err != nil {
					return
				}
				if _, err := io.WriteString(c, s.prefix); err != nil {
					return
				}
			}
			_, _ = io.Copy(io.Discard, c) // until the client closes
		}()
	}
}

func (s *stallServer) open() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *stallServer) close() {
	s.ln.Close()
	s.mu.Lock()
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// waitClosed fails unless the client closed every connection it opened.
func (s *stallServer) waitClosed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for s.open() > 0 {
		if time.Now().After(deadline) {
			t.Errorf("%d connection(s) still open on the server after the operation returned: the client leaked them", s.open())
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const partialAdvertisement = "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n" +
	"Cache-Control: no-cache\r\n\r\n001e# service=git-upload-pack\n0000"

// Every network operation against a server that accepts and stalls ends
// with ErrTimeout, bounded by the idle timeout (HTTP, SSH) or the
// operation's timeout (git://), with an error naming the repository, the
// operation and the limits, and closes its connection.
func TestStalledServerTimesOut(t *testing.T) {
	_, sshKey := newSSHKey(t)
	const idle, whole = 300 * time.Millisecond, 20 * time.Second
	tests := []struct {
		name, scheme, prefix string
		auth                 *Auth
		limits               Limits
		within               time.Duration // the limit that must end it
	}{
		{name: "http silent", scheme: "http", limits: Limits{Timeout: whole, IdleTimeout: idle}, within: idle},
		{name: "http partial response", scheme: "http", prefix: partialAdvertisement,
			limits: Limits{Timeout: whole, IdleTimeout: idle}, within: idle},
		{name: "http headers only", scheme: "http", prefix: "HTTP/1.1 200 OK\r\nContent-Type: application/x-git-upload-pack-advertisement\r\n",
			limits: Limits{Timeout: whole, IdleTimeout: idle}, within: idle},
		{name: "https silent (TLS handshake)", scheme: "https", limits: Limits{Timeout: whole, IdleTimeout: idle}, within: idle},
		{name: "ssh silent (handshake)", scheme: "ssh", auth: &Auth{SSHPrivateKey: sshKey, InsecureIgnoreHostKey: true},
			limits: Limits{Timeout: whole, IdleTimeout: idle}, within: idle},
		{name: "ssh banner then silence", scheme: "ssh", prefix: "SSH-2.0-OpenSSH_9.6\r\n",
			auth:   &Auth{SSHPrivateKey: sshKey, InsecureIgnoreHostKey: true},
			limits: Limits{Timeout: whole, IdleTimeout: idle}, within: idle},
		// git:// has no dial hook: the operation's timeout ends it.
		{name: "git silent", scheme: "git", limits: Limits{Timeout: 500 * time.Millisecond, IdleTimeout: time.Hour},
			within: 500 * time.Millisecond},
	}
	ops := []struct {
		name string
		run  func(context.Context, *Source) error
	}{
		{"poll", func(ctx context.Context, s *Source) error { _, err := s.Poll(ctx); return err }},
		{"fetch", func(ctx context.Context, s *Source) error {
			sn, err := s.Snapshot(ctx, "refs/heads/main", strings.Repeat("a", 40))
			if err == nil {
				sn.Close()
			}
			return err
		}},
		{"commit back", func(ctx context.Context, s *Source) error {
			_, err := s.CommitBack(ctx, CommitRequest{Branch: "main", Files: map[string][]byte{"a": []byte("x")},
				Message: "results", Author: bot}, nil)
			return err
		}},
	}
	before := runtime.NumGoroutine()
	defer func() { waitGoroutines(t, before) }()
	for _, tc := range tests {
		for _, op := range ops {
			t.Run(tc.name+"/"+op.name, func(t *testing.T) {
				srv := newStallServer(t, tc.prefix)
				url := tc.scheme + "://" + srv.ln.Addr().String() + "/x.git"
				if tc.scheme == "ssh" {
					url = "ssh://git@" + srv.ln.Addr().String() + "/x.git"
				}
				src, err := New(Repository{URL: url, Auth: tc.auth, Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
					URLPolicy: URLPolicy{AllowHTTP: true}, Limits: tc.limits}, t.TempDir())
				if err != nil {
					t.Fatal(err)
				}
				// No deadline from the caller: the package's own limits must hold.
				t0 := time.Now()
				err = op.run(context.Background(), src)
				took := time.Since(t0)
				if !errors.Is(err, ErrTimeout) {
					t.Fatalf("err = %v, want ErrTimeout", err)
				}
				if took < tc.within || took > tc.within+3*time.Second {
					t.Errorf("returned after %v, want soon after the %v limit", took, tc.within)
				}
				for _, want := range []string{RedactURL(url), "timed out", tc.limits.withDefaults().Timeout.String(),
					"check that the server is up", "raise the repository's timeout"} {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not mention %q", err, want)
					}
				}
				srv.waitClosed(t)
			})
		}
	}
}

// The caller's earlier deadline wins over the package limits, and
// cancelling the caller's context ends a stalled operation at once.
func TestCallerContextEndsAStalledOperation(t *testing.T) {
	for _, scheme := range []string{"http", "git"} {
		t.Run(scheme, func(t *testing.T) {
			srv := newStallServer(t, "")
			src, err := New(Repository{URL: scheme + "://" + srv.ln.Addr().String() + "/x.git",
				Refs: []RefPolicy{{Pattern: "main", Trusted: true}}, URLPolicy: URLPolicy{AllowHTTP: true}}, t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(200*time.Millisecond, cancel)
			t0 := time.Now()
			_, err = src.Poll(ctx)
			if err == nil || time.Since(t0) > 5*time.Second {
				t.Fatalf("err = %v after %v, want an error soon after the cancel", err, time.Since(t0))
			}
			if !errors.Is(err, context.Canceled) {
				t.Errorf("err = %v, want it to wrap context.Canceled", err)
			}
			srv.waitClosed(t)
		})
	}
}

// slowProxy forwards TCP to target, sending the server's bytes in small
// pieces with a pause before each, so a transfer keeps progressing but
// lasts much longer than the pause.
func slowProxy(t *testing.T, target string, piece int, pause time.Duration) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var open []net.Conn
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range open {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			up, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			mu.Lock()
			open = append(open, c, up)
			mu.Unlock()
			wg.Add(2)
			go func() { defer wg.Done(); _, _ = io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, piece)
				for {
					n, err := up.Read(buf)
					if n > 0 {
						time.Sleep(pause)
						if _, werr := c.Write(buf[:n]); werr != nil {
							return
						}
					}
					if err != nil {
						return
					}
				}
			}()
		}
	}()
	return ln.Addr().String()
}

// A fetch that keeps receiving data is not cut by the idle timeout even
// when it lasts many times longer.
func TestSlowButProgressingFetchIsNotCut(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("slow")
	p := newPeer(t, srv.peerURL("slow"))
	// Incompressible content, so the pack is large enough to need many pieces.
	// ~128 chunks of 1 KiB, 40 ms apart: about 5 s, more than twice the
	// idle timeout, though no pause is near it.
	big := make([]byte, 128<<10)
	rnd := rand.New(rand.NewPCG(1, 2))
	for i := range big {
		big[i] = byte(rnd.Uint32())
	}
	head := p.commit("big", map[string]string{"big.bin": string(big)})
	p.push("main")

	addr := strings.TrimPrefix(srv.srv.HTTPAddress(), "http://")
	proxied := "http://" + slowProxy(t, addr, 1024, 40*time.Millisecond) + "/slow.git"
	// 2 s: under load the server may take hundreds of milliseconds to
	// start answering (it spawns git upload-pack); the proxy's 40 ms pauses
	// are far below it either way.
	const idle = 2 * time.Second
	src, err := New(Repository{URL: proxied, Auth: basicAuth(), Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{IdleTimeout: idle}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	sn, err := src.Snapshot(testCtx(t), "refs/heads/main", head)
	took := time.Since(t0)
	if err != nil {
		t.Fatalf("slow fetch failed after %v: %v", took, err)
	}
	defer sn.Close()
	if took < 2*idle {
		t.Errorf("fetch took %v, less than twice the idle timeout %v: the test proves nothing", took, idle)
	}
	got, err := sn.ReadFile("big.bin", 1<<20)
	if err != nil || string(got) != string(big) {
		t.Errorf("big.bin: %d bytes, err %v; want the %d bytes committed", len(got), err, len(big))
	}
	t.Logf("fetch through the slow proxy took %v with an idle timeout of %v", took, idle)
}

// waitGoroutines fails unless the goroutine count falls back to before:
// a read left blocked on a stalled connection would keep one alive.
func waitGoroutines(t *testing.T, before int) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for runtime.NumGoroutine() > before {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			n := runtime.Stack(buf, true)
			t.Errorf("%d goroutines left, %d before the test:\n%s", runtime.NumGoroutine(), before, buf[:n])
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// DefaultBranch reads HEAD's target from a real server, and is bounded
// like every other operation.
func TestDefaultBranch(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("d")
	p := newPeer(t, srv.peerURL("d"))
	p.commit("one", map[string]string{"a": "1"})
	p.push("main")
	p.push("main:refs/heads/develop")
	// Not main: proves HEAD is read rather than main assumed.
	runGit(t, srv.barePath("d"), "symbolic-ref", "HEAD", "refs/heads/develop")
	src := newSource(t, srv, "d")
	got, err := src.DefaultBranch(testCtx(t))
	if err != nil || got != "develop" {
		t.Errorf("DefaultBranch = %q, %v; want develop", got, err)
	}

	stall := newStallServer(t, "")
	silent, err := New(Repository{URL: "http://" + stall.ln.Addr().String() + "/x.git", Refs: []RefPolicy{{Pattern: "main"}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{IdleTimeout: 300 * time.Millisecond}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err = silent.DefaultBranch(context.Background())
	if !errors.Is(err, ErrTimeout) || time.Since(t0) > 3*time.Second {
		t.Errorf("silent server: err = %v after %v, want ErrTimeout after about 300ms", err, time.Since(t0))
	}
	stall.waitClosed(t)
}

// A server that serves fetches but stalls on the push itself: the
// commit-back fails with ErrTimeout (not "rejected"), and nothing is
// retried for as long as the push is stalled.
func TestStalledPushTimesOut(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("p")
	p := newPeer(t, srv.peerURL("p"))
	head := p.commit("one", map[string]string{"a": "1"})
	p.push("main")
	target, err := neturl.Parse(srv.srv.HTTPAddress())
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(target)
	release := make(chan struct{})
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, "/git-receive-pack") {
			_, _ = io.Copy(io.Discard, r.Body)
			select { // stall until the client gives up (or the test ends)
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(func() { close(release); front.Close() })
	// Long enough that the fetch before the push never idles out on a
	// loaded machine (300 ms did, in CI: the fetch failed first).
	const idle = 2 * time.Second
	src, err := New(Repository{URL: front.URL + "/p.git", Auth: basicAuth(), Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{IdleTimeout: idle}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Now()
	_, err = src.CommitBack(context.Background(), CommitRequest{Branch: "main", Base: head, Files: map[string][]byte{"r": []byte("x")},
		Message: "results", Author: bot, Retry: RetryPolicy{MaxAttempts: 1}}, nil)
	took := time.Since(t0)
	if !errors.Is(err, ErrTimeout) || errors.Is(err, ErrPushRejected) {
		t.Fatalf("err = %v, want ErrTimeout (and not ErrPushRejected)", err)
	}
	if took > idle+30*time.Second { // catches a hang or a retry, not a slow machine
		t.Errorf("returned after %v, want soon after the %v idle timeout", took, idle)
	}
	if !strings.Contains(err.Error(), "push") {
		t.Errorf("error %q does not name the push", err)
	}
	if got := reclone(t, srv.peerURL("p"), "main").head(t); got != head {
		t.Errorf("server head = %s, want it unchanged at %s", got, head)
	}
}

// An operation queued behind a stalled one on the same repository gives
// up at its own deadline instead of waiting for the stalled one.
func TestWaiterBehindAStalledOperationKeepsItsDeadline(t *testing.T) {
	srv := newStallServer(t, "")
	src, err := New(Repository{URL: "http://" + srv.ln.Addr().String() + "/x.git", Refs: []RefPolicy{{Pattern: "main", Trusted: true}},
		URLPolicy: URLPolicy{AllowHTTP: true}, Limits: Limits{IdleTimeout: 3 * time.Second}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	stalled := make(chan error, 1)
	go func() {
		sn, err := src.Snapshot(context.Background(), "refs/heads/main", strings.Repeat("b", 40))
		if err == nil {
			sn.Close()
		}
		stalled <- err
	}()
	for srv.open() == 0 { // the first operation holds the cache and a connection
		time.Sleep(10 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	t0 := time.Now()
	_, err = src.Snapshot(ctx, "refs/heads/main", strings.Repeat("c", 40))
	if !errors.Is(err, ErrTimeout) || time.Since(t0) > 2*time.Second {
		t.Errorf("queued snapshot: err = %v after %v, want ErrTimeout soon after its 200ms deadline", err, time.Since(t0))
	}
	if err := <-stalled; !errors.Is(err, ErrTimeout) {
		t.Errorf("stalled snapshot: err = %v, want ErrTimeout", err)
	}
	srv.waitClosed(t)
}
