//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package platform

// Without /proc expsync does not look into other processes: runs are
// contained by their process group only, their memory is the kernel's
// rusage figure, and a killed expsync's runs are found by their process
// group alone.

// ReadStat is unsupported.
func ReadStat(pid int) (ProcStat, error) { return ProcStat{}, ErrUnsupported }

// PIDs is unsupported.
func PIDs() ([]int, error) { return nil, ErrUnsupported }

// Environ is unsupported.
func Environ(pid int) ([]byte, error) { return nil, ErrUnsupported }

// Children does not tell.
func Children(pid int) ([]int, bool) { return nil, false }

// OwnCgroup: there are no cgroups.
func OwnCgroup() string { return "/" }

// SelfPeakRSS does not tell.
func SelfPeakRSS() int64 { return 0 }

// PeakRSS does not tell.
func (r *ProcReader) PeakRSS(pid int) (int64, bool) { return 0, false }

// AppendChildren finds none.
func (r *ProcReader) AppendChildren(dst []int, pid int) []int { return dst }

// ProcSelf is unsupported.
func ProcSelf() (int, error) { return 0, ErrUnsupported }
