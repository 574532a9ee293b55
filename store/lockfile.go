package store

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"golang.org/x/sys/unix"
)

// lockRunFile is LockRun where open file description locks are missing
// (platform.TryLockByte): flock on locks/runs/<run ID>, which belongs to
// the open description on Linux and the BSDs alike, so goroutines and
// processes exclude each other and a dead holder releases it. The files
// stay (an empty file per run ever locked).
func (s *Local) lockRunFile(ctx context.Context, runID string) (func() error, error) {
	dir := filepath.Join(s.root, "locks", "runs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock run %s: %w", runID, err)
	}
	f, err := os.OpenFile(filepath.Join(dir, runID), os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock run %s: %w", runID, err)
	}
	wait := time.Millisecond
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err == nil {
			return f.Close, nil
		}
		if err != unix.EWOULDBLOCK && err != unix.EINTR {
			f.Close()
			return nil, fmt.Errorf("lock run %s: %w", runID, err)
		}
		select {
		case <-ctx.Done():
			f.Close()
			return nil, fmt.Errorf("lock run %s: %w", runID, ctx.Err())
		case <-time.After(wait):
		}
		if wait < 100*time.Millisecond {
			wait *= 2
		}
	}
}
