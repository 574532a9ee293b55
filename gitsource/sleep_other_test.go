//go:build !linux

package gitsource

import "time"

// sleepPrecisely: only Linux's nanosleep is precise enough for the tree
// sampler, which reads Linux's /proc anyway; elsewhere it fails to start.
func sleepPrecisely(d time.Duration) { time.Sleep(d) }
