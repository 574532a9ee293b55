package store

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestLockRunFileExcludesAndGivesUp: the flock fallback of LockRun (used
// where open file description locks are missing, not on Linux) gives the
// same guarantees, tested here on Linux: goroutines with their own Local
// never overlap, and a waiter gives up when its context ends.
func TestLockRunFileExcludesAndGivesUp(t *testing.T) {
	ctx := context.Background()
	s := newLocal(t)
	id := "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
	assertExclusive(t, s, id, (*Local).lockRunFile)
	unlock, err := s.lockRunFile(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	defer cancel()
	if _, err := s.lockRunFile(cctx, id); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("lockRunFile of a held lock = %v, want deadline exceeded", err)
	}
	unlock()
	if again, err := s.lockRunFile(ctx, id); err != nil {
		t.Errorf("lock after unlock: %v", err)
	} else {
		again()
	}
}

// assertExclusive: goroutines with their own Local (own descriptors, as
// separate processes would have) never overlap inside the lock.
func assertExclusive(t *testing.T, s *Local, id string, lock func(*Local, context.Context, string) (func() error, error)) {
	t.Helper()
	var inside, maxInside atomic.Int32
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			other, _ := OpenLocal(s.Root())
			unlock, err := lock(other, context.Background(), id)
			if err != nil {
				t.Error(err)
				return
			}
			n := inside.Add(1)
			if n > maxInside.Load() {
				maxInside.Store(n)
			}
			time.Sleep(5 * time.Millisecond)
			inside.Add(-1)
			unlock()
		}()
	}
	wg.Wait()
	if maxInside.Load() != 1 {
		t.Errorf("%d holders inside the lock at once, want 1", maxInside.Load())
	}
}
