package gitsource

import (
	"syscall"
	"time"
)

// sleepPrecisely sleeps d with nanosleep, which keeps sub-millisecond
// sleeps (Go's timers round them up to about a millisecond).
func sleepPrecisely(d time.Duration) {
	ts := syscall.NsecToTimespec(d.Nanoseconds())
	_ = syscall.Nanosleep(&ts, nil)
}
