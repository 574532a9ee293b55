package gitsource

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// lockCache serialises use of the cache folder: within the process (s.mu)
// and across processes (an flock on <dir>/lock), so two expsync processes
// given the same cache folder wait for each other instead of corrupting it.
// It gives up when ctx ends.
func (s *Source) lockCache(ctx context.Context) (func(), error) {
	select {
	case s.cacheSem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("waiting for another operation on this repository's cache: %w", ctx.Err())
	}
	if err := os.MkdirAll(s.dir, 0o700); err != nil {
		<-s.cacheSem
		return nil, fmt.Errorf("create cache folder: %w", err)
	}
	f, err := os.OpenFile(filepath.Join(s.dir, "lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		<-s.cacheSem
		return nil, fmt.Errorf("open cache lock: %w", err)
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if err != syscall.EWOULDBLOCK && err != syscall.EINTR {
			f.Close()
			<-s.cacheSem
			return nil, fmt.Errorf("lock cache folder: %w", err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			<-s.cacheSem
			return nil, fmt.Errorf("waiting for another process using the cache folder %s: %w", s.dir, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return func() {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
		<-s.cacheSem
	}, nil
}
