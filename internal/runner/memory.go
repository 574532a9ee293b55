package runner

import (
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
)

// Peak memory of a run.
//
// wait4's ru_maxrss alone is wrong for a child of a Go process: Go starts
// children with clone(CLONE_VM|CLONE_VFORK), and at execve Linux folds the
// high-water RSS of the mm being left — the parent's, shared — into the
// child's maxrss. So ru_maxrss is at least expsync's own peak RSS, whatever
// the command used. What is known for sure:
//
//   - the inherited figure is at most this process's VmHWM at the time of
//     the exec, hence at most its VmHWM after the wait: a ru_maxrss above
//     that is the run's own peak (its largest process, children it waited
//     for included), measured by the kernel (method "rusage");
//   - otherwise the run's processes used less than expsync: the figure is
//     the largest VmHWM sampled from /proc/<pid>/status of the child and its
//     descendants (method "sampled"), densely in the first milliseconds
//     and then every sampleInterval: a lower bound that
//     misses growth in the last interval before a process exits; a run
//     that ends before its first sample reports 0 (method "unmeasured").
//
// The methods are contract.MaxRSSByRusage, MaxRSSSampled and MaxRSSUnmeasured.

// sampleInterval is how often the sampler reads /proc while a run lives.
const sampleInterval = 50 * time.Millisecond

// maxSampledProcs bounds the processes read per sample (a fork bomb must
// not make the sampler expensive).
const maxSampledProcs = 64

// peakSampler follows the VmHWM of a process tree until stopped.
type peakSampler struct {
	pid   int
	stopc chan struct{}
	done  chan struct{}
	peak  int64 // bytes; written by the sampler goroutine only
	proc  platform.ProcReader
	// seen are the descendants met while sampling (up to maxSeen): the
	// ones that left the process group (setsid) are ended after the run.
	seen map[int]bool
	// skipRoot leaves pid itself out of the peak: the run's reaper, whose
	// memory is expsync's, not the run's.
	skipRoot bool
}

const maxSeen = 256

func startPeakSampler(pid int, skipRoot bool) *peakSampler {
	s := &peakSampler{pid: pid, skipRoot: skipRoot, stopc: make(chan struct{}), done: make(chan struct{})}
	go s.loop()
	return s
}

// earlySamples are the first delays between samples: a process's VmHWM
// is only what it touched so far (a few pages right after exec), so short
// runs are sampled densely at first, then every sampleInterval.
// The first sample waits a millisecond: right after exec a process has
// touched next to nothing, and most trivial runs are over by then (they
// report 0, unknown but below expsync's own peak), which keeps the
// sampler's cost off the many short runs of a sweep.
var earlySamples = []time.Duration{time.Millisecond, 3 * time.Millisecond, 6 * time.Millisecond, 15 * time.Millisecond, 25 * time.Millisecond}

func (s *peakSampler) loop() {
	defer close(s.done)
	t := time.NewTimer(earlySamples[0])
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-s.stopc:
			return
		case <-t.C:
			s.sample()
		}
		next := sampleInterval
		if i < len(earlySamples) {
			next = earlySamples[i]
		}
		t.Reset(next)
	}
}

// stop ends the sampling and returns the largest VmHWM seen, in bytes.
func (s *peakSampler) stop() int64 {
	close(s.stopc)
	<-s.done
	return s.peak
}

// sample reads the VmHWM of the child and its descendants (through
// /proc/<pid>/task/<pid>/children, so no scan of all of /proc).
func (s *peakSampler) sample() {
	queue := []int{s.pid}
	for n := 0; len(queue) > 0 && n < maxSampledProcs; n++ {
		pid := queue[0]
		queue = queue[1:]
		if pid == s.pid && s.skipRoot {
			// the reaper: not the run's memory
		} else if hwm, ok := s.proc.PeakRSS(pid); ok && hwm > s.peak {
			s.peak = hwm
		}
		if pid != s.pid && len(s.seen) < maxSeen {
			if s.seen == nil {
				s.seen = map[int]bool{}
			}
			s.seen[pid] = true
		}
		queue = s.proc.AppendChildren(queue, pid)
	}
}

// peakRSS combines wait4's figure with the sampled one (see above).
func peakRSS(rusageBytes, sampled, ownHWM int64) (int64, string) {
	if ownHWM > 0 && rusageBytes > ownHWM {
		return max(rusageBytes, sampled), contract.MaxRSSByRusage
	}
	if ownHWM == 0 && sampled == 0 {
		// No /proc: the kernel's figure is all there is.
		return rusageBytes, contract.MaxRSSByRusage
	}
	if sampled == 0 {
		return 0, contract.MaxRSSUnmeasured
	}
	return sampled, contract.MaxRSSSampled
}
