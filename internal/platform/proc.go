package platform

import (
	"bytes"
	"fmt"
	"strconv"
)

// ProcStat is what expsync reads of a process's status line
// (/proc/<pid>/stat on Linux).
type ProcStat struct {
	State byte // 'R', 'S', 'Z' (a zombie), ...
	PPID  int
	PGRP  int
	// StartTicks is the process's start time in clock ticks since boot:
	// with the PID it names one process, since a reused PID starts later.
	StartTicks uint64
}

// parseStat reads the fields of ProcStat from a /proc/<pid>/stat line. The
// command name (field 2) is in parentheses and may hold spaces and
// parentheses itself: the fields are counted after the last ')'.
func parseStat(b []byte) (ProcStat, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return ProcStat{}, fmt.Errorf("no command name")
	}
	f := bytes.Fields(b[i+1:])
	// f[0] is field 3 (state), f[1] the parent, f[2] the group, f[19]
	// field 22 (starttime).
	if len(f) < 20 || len(f[0]) != 1 {
		return ProcStat{}, fmt.Errorf("%d fields after the command name, want 20 or more", len(f))
	}
	var st ProcStat
	var err error
	st.State = f[0][0]
	if st.PPID, err = strconv.Atoi(string(f[1])); err != nil {
		return ProcStat{}, fmt.Errorf("parent: %w", err)
	}
	if st.PGRP, err = strconv.Atoi(string(f[2])); err != nil {
		return ProcStat{}, fmt.Errorf("process group: %w", err)
	}
	if st.StartTicks, err = strconv.ParseUint(string(f[19]), 10, 64); err != nil {
		return ProcStat{}, fmt.Errorf("start time: %w", err)
	}
	return st, nil
}

// parseVmHWM finds "VmHWM:   1234 kB" in a /proc status file (absent for
// a zombie or a kernel thread) and returns it in bytes.
func parseVmHWM(status []byte) (int64, bool) {
	i := bytes.Index(status, []byte("VmHWM:"))
	if i < 0 {
		return 0, false
	}
	rest := status[i+len("VmHWM:"):]
	if j := bytes.IndexByte(rest, '\n'); j >= 0 {
		rest = rest[:j]
	}
	fields := bytes.Fields(rest)
	if len(fields) == 0 {
		return 0, false
	}
	kb, err := strconv.ParseInt(string(fields[0]), 10, 64)
	if err != nil {
		return 0, false
	}
	return kb * 1024, true
}

// ProcReader reads small per-process files with one reused buffer, for a
// sampler that reads them every few milliseconds. Not for concurrent use.
type ProcReader struct {
	buf []byte
}
