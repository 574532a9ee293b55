package gitsource

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	"golang.org/x/net/proxy"
)

// Network bounds. go-git passes the operation's context to HTTP requests
// and to its pkt-line readers, but not to every blocking step: the SSH
// transport dials and runs the SSH handshake without it (a server that
// accepts and stays silent hangs forever), and nothing notices a
// connection that stops sending in the middle of a large fetch until the
// whole operation's deadline. So every connection gitsource opens over
// HTTP(S) and SSH goes through boundedDial: the dial, the TLS or SSH
// handshake and every read and write must make progress within the idle
// timeout, and the connection is cut the moment the operation's context
// ends. A slow fetch that keeps receiving data is never cut by the idle
// timeout, only by the operation's deadline.
//
// git:// offers no hook to the dial (go-git calls net.Dial itself): there
// the operation's deadline still holds, because go-git reads through a
// context-aware reader and closes the connection when the context ends,
// but the idle timeout does not apply.

type idleKey struct{}

// withIdle attaches the idle timeout the dialer applies to the connections
// opened for ctx.
func withIdle(ctx context.Context, idle time.Duration) context.Context {
	return context.WithValue(ctx, idleKey{}, idle)
}

func idleOf(ctx context.Context) time.Duration {
	if d, ok := ctx.Value(idleKey{}).(time.Duration); ok && d > 0 {
		return d
	}
	return defaultIdleTimeout
}

// boundedDial dials addr within the idle timeout and returns a connection
// whose reads and writes each fail after idle without progress, and which
// fails every pending and later call once ctx ends.
func boundedDial(ctx context.Context, network, addr string) (net.Conn, error) {
	idle := idleOf(ctx)
	dctx, cancel := context.WithTimeout(ctx, idle)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(dctx, network, addr)
	if err != nil {
		return nil, err
	}
	bc := &boundedConn{Conn: c, idle: idle}
	bc.stop = context.AfterFunc(ctx, bc.expire)
	return bc, nil
}

// boundedConn is a net.Conn with a per-call idle deadline and a hard stop
// when its operation's context ends.
type boundedConn struct {
	net.Conn
	idle time.Duration
	stop func() bool

	mu      sync.Mutex
	expired bool
}

// expire makes every pending and later call fail at once. Under mu, so a
// call cannot push the deadline back after it.
func (c *boundedConn) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expired = true
	_ = c.Conn.SetDeadline(time.Unix(1, 0))
}

func (c *boundedConn) arm(set func(time.Time) error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.expired {
		_ = set(time.Now().Add(c.idle))
	}
}

func (c *boundedConn) Read(p []byte) (int, error) {
	c.arm(c.Conn.SetReadDeadline)
	return c.Conn.Read(p)
}

// writeChunk bounds one write call: a large buffer (a pack handed over in
// one Write) is sent in pieces, each with a fresh idle deadline, so a slow
// link that keeps accepting data is not cut.
const writeChunk = 64 << 10

func (c *boundedConn) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), writeChunk)
		c.arm(c.Conn.SetWriteDeadline)
		m, err := c.Conn.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

func (c *boundedConn) Close() error {
	c.stop()
	return c.Conn.Close()
}

// boundedHTTPTransport is http.DefaultTransport (proxy from the
// environment, TLS defaults) dialing through boundedDial. Keep-alives are
// off: a pooled connection would outlive the operation whose context and
// idle timeout it was dialed with; one connection per request is what the
// git CLI does too. HTTP/2 is off for the same reason (its connections are
// shared); smart HTTP needs nothing from it.
func boundedHTTPTransport() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.DialContext = boundedDial
	t.DisableKeepAlives = true
	t.ForceAttemptHTTP2 = false
	t.TLSNextProto = map[string]func(string, *tls.Conn) http.RoundTripper{}
	// The reads behind these are already bounded by the idle timeout; the
	// explicit limits name the step in the error.
	t.TLSHandshakeTimeout = defaultIdleTimeout
	t.ResponseHeaderTimeout = 0 // per-read idle deadline covers a slow header
	return t
}

// sshDialScheme is a private proxy scheme: go-git's SSH transport dials
// through golang.org/x/net/proxy when the endpoint names a proxy, which is
// the only hook it has on the connection. The URL's host is a key into
// sshDials, which holds the operation's context.
const sshDialScheme = "expsync-bounded-dial"

var (
	sshDials   sync.Map // key string -> context.Context
	sshDialSeq atomic.Uint64
)

type sshDialer struct{ key string }

func (d sshDialer) Dial(network, addr string) (net.Conn, error) {
	return d.DialContext(context.Background(), network, addr)
}

func (d sshDialer) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	v, ok := sshDials.Load(d.key)
	if !ok {
		return nil, fmt.Errorf("internal error: dial %s outside its operation", addr)
	}
	// ctx is go-git's (background, or its own dial timeout); the
	// operation's context and idle timeout are the ones that bound us.
	op := v.(context.Context)
	// Without our proxy option go-git would have dialed through
	// ALL_PROXY (x/net/proxy.FromEnvironment); keep that, over a bounded
	// connection. With no ALL_PROXY this is boundedDial itself.
	dialer := proxy.FromEnvironmentUsing(opDialer{op})
	if cd, ok := dialer.(proxy.ContextDialer); ok {
		return cd.DialContext(op, network, addr)
	}
	return dialer.Dial(network, addr)
}

// opDialer dials through boundedDial under one operation's context.
type opDialer struct{ op context.Context }

func (d opDialer) Dial(network, addr string) (net.Conn, error) {
	return boundedDial(d.op, network, addr)
}

func (d opDialer) DialContext(_ context.Context, network, addr string) (net.Conn, error) {
	return boundedDial(d.op, network, addr)
}

// sshProxy registers ctx for the SSH dial of one operation and returns the
// proxy options that route the dial through boundedDial, and the function
// that unregisters it. For other URLs it returns empty options.
func sshProxy(ctx context.Context, rawURL string) (transport.ProxyOptions, func()) {
	if !isSSHURL(rawURL) {
		return transport.ProxyOptions{}, func() {}
	}
	key := fmt.Sprintf("op%d", sshDialSeq.Add(1))
	sshDials.Store(key, ctx)
	return transport.ProxyOptions{URL: sshDialScheme + "://" + key}, func() { sshDials.Delete(key) }
}

// httpClientBounded is the client behind go-git's "http" and "https".
var httpClientBounded = http.Client{Transport: boundedHTTPTransport()}

func init() {
	proxy.RegisterDialerType(sshDialScheme, func(u *url.URL, _ proxy.Dialer) (proxy.Dialer, error) {
		return sshDialer{key: strings.ToLower(u.Host)}, nil
	})
	// go-git picks a transport by scheme from one process-wide table;
	// every HTTP(S) Git operation in this process dials through
	// boundedDial. Redirect handling is go-git's own (NewClient keeps it).
	hc := githttp.NewClient(&httpClientBounded)
	client.InstallProtocol("http", hc)
	client.InstallProtocol("https", hc)
}
