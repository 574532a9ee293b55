package fleetbench

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// RSSSampler reads a process's VmRSS every 100 ms.
type RSSSampler struct {
	mu      sync.Mutex
	samples []rssSample
	done    chan struct{}
	wg      sync.WaitGroup
}

type rssSample struct {
	at  time.Time
	rss int64
}

// NewRSSSampler starts sampling pid until Stop.
func NewRSSSampler(pid int) *RSSSampler {
	s := &RSSSampler{done: make(chan struct{})}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			if kib := StatusKiB(pid, "VmRSS"); kib > 0 {
				s.mu.Lock()
				s.samples = append(s.samples, rssSample{time.Now(), kib << 10})
				s.mu.Unlock()
			}
			select {
			case <-s.done:
				return
			case <-t.C:
			}
		}
	}()
	return s
}

// Stop ends the sampling.
func (s *RSSSampler) Stop() { close(s.done); s.wg.Wait() }

// MedianSince is the median resident memory (bytes) sampled since t.
func (s *RSSSampler) MedianSince(t time.Time) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	var v []int64
	for _, x := range s.samples {
		if !x.at.Before(t) {
			v = append(v, x.rss)
		}
	}
	if len(v) == 0 {
		return 0
	}
	sort.Slice(v, func(i, j int) bool { return v[i] < v[j] })
	return v[len(v)/2]
}

// StatusKiB reads one "Name: N kB" field of /proc/PID/status (VmRSS,
// VmHWM; 0 when the process is gone).
func StatusKiB(pid int, field string) int64 {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return n
		}
	}
	return 0
}

// CPU is a live process's user+system CPU time from /proc/PID/stat.
func CPU(pid int) time.Duration {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// Fields after the command name, which may hold spaces: state is
	// field 3, utime 14 and stime 15.
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+2:])
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks
}

// MiB converts bytes.
func MiB(b int64) float64 { return float64(b) / (1 << 20) }
