package gitsource

import (
	"context"
	"errors"
	"net"
	"os"
	"testing"
	"time"
)

// pipeConn returns a boundedConn over one end of a synchronous pipe (a
// write blocks until the other end reads it) and the other end.
func pipeConn(t *testing.T, ctx context.Context, idle time.Duration) (*boundedConn, net.Conn) {
	a, b := net.Pipe()
	c := &boundedConn{Conn: a, idle: idle}
	c.stop = context.AfterFunc(ctx, c.expire)
	t.Cleanup(func() { c.Close(); b.Close() })
	return c, b
}

// A large write to a slow reader that keeps reading is not cut by the
// idle timeout, though it lasts longer; a reader that stops cuts it.
func TestBoundedConnWrite(t *testing.T) {
	const idle = 300 * time.Millisecond
	tests := []struct {
		name    string
		reads   int // reads the peer does before it stops
		wantErr bool
	}{
		{name: "slow but progressing", reads: 1 << 30},
		{name: "peer stops reading", reads: 3, wantErr: true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, peer := pipeConn(t, context.Background(), idle)
			go func() {
				buf := make([]byte, writeChunk)
				for i := 0; i < tc.reads; i++ {
					time.Sleep(100 * time.Millisecond)
					if _, err := peer.Read(buf); err != nil {
						return
					}
				}
			}()
			data := make([]byte, 10*writeChunk) // about 1s at one chunk per 100ms
			t0 := time.Now()
			n, err := c.Write(data)
			took := time.Since(t0)
			if tc.wantErr {
				if !errors.Is(err, os.ErrDeadlineExceeded) {
					t.Errorf("Write = %d, %v; want a deadline error", n, err)
				}
				return
			}
			if err != nil || n != len(data) {
				t.Errorf("Write = %d, %v after %v; want all %d bytes", n, err, took, len(data))
			}
			if took < 2*idle {
				t.Errorf("write took %v, less than twice the idle timeout: the test proves nothing", took)
			}
		})
	}
}

// The end of the operation's context fails a blocked read at once, and a
// read that starts after it too (the idle deadline is not re-armed).
func TestBoundedConnStopsWithItsContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	c, _ := pipeConn(t, ctx, time.Hour)
	time.AfterFunc(100*time.Millisecond, cancel)
	t0 := time.Now()
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read after cancel: err = %v, want a deadline error", err)
	}
	if took := time.Since(t0); took > 10*time.Second { // the idle limit is an hour; 10 s leaves room for a loaded machine
		t.Errorf("blocked read returned after %v, want soon after the cancel", took)
	}
	if _, err := c.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Errorf("read started after cancel: err = %v, want a deadline error", err)
	}
}
