package platform

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
)

// ReadStat reads the status line of process pid.
func ReadStat(pid int) (ProcStat, error) {
	path := "/proc/" + strconv.Itoa(pid) + "/stat"
	b, err := os.ReadFile(path)
	if err != nil {
		return ProcStat{}, err
	}
	st, err := parseStat(b)
	if err != nil {
		return ProcStat{}, fmt.Errorf("%s: %w", path, err)
	}
	return st, nil
}

// PIDs lists the processes of the machine (of its PID namespace).
func PIDs() ([]int, error) {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	pids := make([]int, 0, len(entries))
	for _, e := range entries {
		if pid, err := strconv.Atoi(e.Name()); err == nil {
			pids = append(pids, pid)
		}
	}
	return pids, nil
}

// Environ returns process pid's environment, NUL-separated. Only this
// user's processes are readable (and, for a non-dumpable one, only by
// root).
func Environ(pid int) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
}

// Children lists the children of pid, from every thread's
// /proc/<pid>/task/<tid>/children; ok is false when the kernel does not
// tell (built without it, or pid gone), and the caller then finds them by
// their parent (PIDs and ReadStat).
func Children(pid int) (children []int, ok bool) {
	p := strconv.Itoa(pid)
	tasks, err := os.ReadDir("/proc/" + p + "/task")
	if err != nil {
		return nil, false
	}
	seen := map[int]bool{}
	for _, t := range tasks {
		data, err := os.ReadFile("/proc/" + p + "/task/" + t.Name() + "/children")
		if err != nil {
			continue
		}
		ok = true
		for _, f := range strings.Fields(string(data)) {
			if n, err := strconv.Atoi(f); err == nil && !seen[n] {
				seen[n] = true
				children = append(children, n)
			}
		}
	}
	return children, ok
}

// OwnCgroup is this process's cgroup v2 path below the hierarchy's mount
// ("/" when it cannot tell).
func OwnCgroup() string {
	own := "/"
	if f, err := os.Open("/proc/self/cgroup"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if p, ok := strings.CutPrefix(sc.Text(), "0::"); ok {
				own = p
			}
		}
		f.Close()
	}
	return own
}

var selfStatus struct {
	mu sync.Mutex
	r  ProcReader
}

// SelfPeakRSS is this process's peak resident memory (VmHWM) in bytes; 0
// when it cannot tell.
func SelfPeakRSS() int64 {
	selfStatus.mu.Lock()
	defer selfStatus.mu.Unlock()
	b, ok := selfStatus.r.read("/proc/self/status", 8192)
	if !ok {
		return 0
	}
	hwm, _ := parseVmHWM(b)
	return hwm
}

// PeakRSS is process pid's peak resident memory (VmHWM) in bytes; false
// for a process gone, a zombie or a kernel thread.
func (r *ProcReader) PeakRSS(pid int) (int64, bool) {
	b, ok := r.read("/proc/"+strconv.Itoa(pid)+"/status", 4096)
	if !ok {
		return 0, false
	}
	return parseVmHWM(b)
}

// AppendChildren appends to dst the children of pid started by its main
// thread (/proc/<pid>/task/<pid>/children: one file, no scan).
func (r *ProcReader) AppendChildren(dst []int, pid int) []int {
	p := strconv.Itoa(pid)
	b, ok := r.read("/proc/"+p+"/task/"+p+"/children", 4096)
	if !ok {
		return dst
	}
	for _, f := range bytes.Fields(b) {
		if c, err := strconv.Atoi(string(f)); err == nil {
			dst = append(dst, c)
		}
	}
	return dst
}

// read reads up to size bytes of a small /proc file into the buffer.
func (r *ProcReader) read(path string, size int) ([]byte, bool) {
	f, err := os.Open(path)
	if err != nil {
		return nil, false
	}
	defer f.Close()
	if len(r.buf) < size {
		r.buf = make([]byte, size)
	}
	n, _ := f.Read(r.buf[:size])
	return r.buf[:n], n > 0
}

// ProcSelf is this process's ID as the mounted /proc sees it: in a PID
// namespace whose /proc is the host's, not os.Getpid().
func ProcSelf() (int, error) {
	self, err := os.Readlink("/proc/self")
	if err != nil {
		return 0, err
	}
	return strconv.Atoi(self)
}
