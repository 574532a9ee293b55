package gitsource

import (
	"bytes"
	"errors"
	"os"
	"runtime"
	"strconv"
	"sync/atomic"
	"time"
)

// treeMemory is the machine memory a process tree holds at one moment.
type treeMemory struct {
	// Anon is the tree's anonymous memory (heap, stacks, written data),
	// each page counted once: the sum of the processes' Pss_Anon, which
	// equals their RssAnon except that a page a forked child still shares
	// with its parent (between fork and exec) is split between them.
	Anon int64
	// File is the tree's file-backed resident memory (executables,
	// libraries, mmapped packs) counted once per distinct file: for each
	// file (device and inode), the largest resident size any one process
	// of the tree maps. Two git processes running one binary count its
	// text once, not twice. (The largest is a lower bound of the union of
	// their pages; the processes run the same code, so it is close.)
	File int64
}

func (m treeMemory) total() int64 { return m.Anon + m.File }

// procFiles is one process's file-backed memory per file, as last read
// from its smaps, and the total it was read at.
type procFiles struct {
	fileRss int64
	byFile  map[string]int64 // "dev inode" -> bytes
}

// treeSampler follows a process and its descendants through /proc and
// keeps the peak of their summed memory (treeMemory). Each sample reads
// /proc/PID/smaps_rollup of every process of the tree (about 40 µs each);
// the per-file breakdown (/proc/PID/smaps, about 250 µs) is read again only
// when the process's file-backed total changed, which after start-up is
// rare: anonymous memory changes, the mapped text does not.
type treeSampler struct {
	root        int
	includeRoot bool // false when root is a wrapper (GNU time) that is not measured

	proc   *os.File
	parent map[int]int  // every pid listed in /proc -> its parent (-1 if unreadable)
	inTree map[int]bool // every pid listed -> descends from root
	files  map[int]*procFiles
	buf    []byte

	peak    treeMemory
	samples int
}

func newTreeSampler(root int, includeRoot bool) (*treeSampler, error) {
	proc, err := os.Open("/proc")
	if err != nil {
		return nil, err
	}
	return &treeSampler{root: root, includeRoot: includeRoot, proc: proc,
		parent: map[int]int{}, inTree: map[int]bool{root: true}, files: map[int]*procFiles{},
		buf: make([]byte, 0, 64<<10)}, nil
}

// run samples every interval (plus the sample's own cost) until stop is
// set. It keeps its OS thread and sleeps with nanosleep (on Linux, the
// only system with the /proc it reads): Go's timers round a 250 µs sleep
// up to about a millisecond.
func (s *treeSampler) run(interval time.Duration, stop *atomic.Bool) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	for !stop.Load() {
		_ = s.sample()
		sleepPrecisely(interval)
	}
	_ = s.proc.Close()
}

// sample measures the tree once and keeps the peak.
func (s *treeSampler) sample() error {
	if err := s.discover(); err != nil {
		return err
	}
	var now treeMemory
	largest := map[string]int64{}
	for pid, in := range s.inTree {
		if !in || (pid == s.root && !s.includeRoot) {
			continue
		}
		anon, files, err := s.measure(pid, s.shares(pid))
		if err != nil { // exited since it was listed
			delete(s.files, pid)
			continue
		}
		now.Anon += anon
		for f, n := range files.byFile {
			largest[f] = max(largest[f], n)
		}
	}
	for _, n := range largest {
		now.File += n
	}
	s.samples++
	if now.total() > s.peak.total() {
		s.peak = now
	}
	return nil
}

// discover lists /proc and classifies the pids not seen before; pids that
// are gone are forgotten (a reused pid is classified afresh).
func (s *treeSampler) discover() error {
	if _, err := s.proc.Seek(0, 0); err != nil {
		return err
	}
	names, err := s.proc.Readdirnames(-1)
	if err != nil {
		return err
	}
	listed := make(map[int]bool, len(names))
	var fresh []int
	for _, n := range names {
		pid, err := strconv.Atoi(n)
		if err != nil {
			continue
		}
		listed[pid] = true
		if _, ok := s.parent[pid]; !ok {
			s.parent[pid] = s.readParent(pid)
			fresh = append(fresh, pid)
		}
	}
	for pid := range s.parent {
		if !listed[pid] && pid != s.root {
			delete(s.parent, pid)
			delete(s.inTree, pid)
		}
	}
	for _, pid := range fresh {
		s.inTree[pid] = s.descends(pid)
	}
	return nil
}

// measured reports whether pid is a process of the tree that is measured.
func (s *treeSampler) measured(pid int) bool {
	return s.inTree[pid] && (pid != s.root || s.includeRoot)
}

// shares reports whether pid may share anonymous pages with another
// measured process: its parent or one of its children is measured.
func (s *treeSampler) shares(pid int) bool {
	if s.measured(s.parent[pid]) {
		return true
	}
	for child, parent := range s.parent {
		if parent == pid && s.measured(child) {
			return true
		}
	}
	return false
}

func (s *treeSampler) descends(pid int) bool {
	for range 64 {
		if in, ok := s.inTree[pid]; ok {
			return in
		}
		pp, ok := s.parent[pid]
		if !ok || pp <= 1 {
			return false
		}
		pid = pp
	}
	return false
}

func (s *treeSampler) readParent(pid int) int {
	data, err := s.read("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return -1
	}
	// "pid (comm) state ppid ...": comm may hold spaces and parentheses.
	i := bytes.LastIndexByte(data, ')')
	if i < 0 {
		return -1
	}
	f := bytes.Fields(data[i+1:])
	if len(f) < 2 {
		return -1
	}
	pp, err := strconv.Atoi(string(f[1]))
	if err != nil {
		return -1
	}
	return pp
}

// measure returns pid's anonymous memory and its file-backed memory per
// file. A process that may share anonymous pages with another of the tree
// (copy-on-write after fork: with its parent or a child in the tree) is read
// from smaps_rollup, whose Pss_Anon splits a shared page between its
// sharers; any other process from status (RssAnon), which is several times
// cheaper for a Go process (smaps_rollup walks its large reserved address
// space: ~200 µs against ~20 µs).
func (s *treeSampler) measure(pid int, shares bool) (int64, *procFiles, error) {
	dir := "/proc/" + strconv.Itoa(pid)
	var anon, fileRss int64
	if shares {
		data, err := s.read(dir + "/smaps_rollup")
		if err != nil {
			return 0, nil, err
		}
		var rss, anonRss int64
		for line := range bytes.Lines(data) {
			switch {
			case bytes.HasPrefix(line, []byte("Rss:")):
				rss = kibField(line)
			case bytes.HasPrefix(line, []byte("Anonymous:")):
				anonRss = kibField(line)
			case bytes.HasPrefix(line, []byte("Pss_Anon:")):
				anon = kibField(line)
			}
		}
		fileRss = rss - anonRss
	} else {
		data, err := s.read(dir + "/status")
		if err != nil {
			return 0, nil, err
		}
		for line := range bytes.Lines(data) {
			switch {
			case bytes.HasPrefix(line, []byte("RssAnon:")):
				anon = kibField(line)
			case bytes.HasPrefix(line, []byte("RssFile:")), bytes.HasPrefix(line, []byte("RssShmem:")):
				fileRss += kibField(line)
			}
		}
	}
	if anon == 0 && fileRss == 0 { // a zombie maps nothing
		return 0, nil, errors.New("no memory")
	}
	pf := s.files[pid]
	if pf == nil {
		pf = &procFiles{fileRss: -1}
		s.files[pid] = pf
	}
	if fileRss != pf.fileRss {
		byFile, err := s.readFiles(dir + "/smaps")
		if err != nil {
			return 0, nil, err
		}
		pf.fileRss, pf.byFile = fileRss, byFile
	}
	return anon, pf, nil
}

// readFiles sums a process's file-backed resident memory per file from its
// smaps: Rss minus Anonymous (copy-on-write pages of a private file
// mapping are anonymous memory, counted in Pss_Anon).
func (s *treeSampler) readFiles(path string) (map[string]int64, error) {
	data, err := s.read(path)
	if err != nil {
		return nil, err
	}
	byFile := map[string]int64{}
	file := ""
	for line := range bytes.Lines(data) {
		sp := bytes.IndexByte(line, ' ')
		if sp <= 0 {
			continue
		}
		if line[sp-1] != ':' {
			// A mapping's header: "start-end perms offset dev inode [path]".
			file = ""
			if f := bytes.Fields(line); len(f) >= 5 && string(f[4]) != "0" {
				file = string(f[3]) + " " + string(f[4])
			}
			continue
		}
		if file == "" {
			continue
		}
		switch string(line[:sp]) {
		case "Rss:":
			byFile[file] += kibField(line)
		case "Anonymous:":
			byFile[file] -= kibField(line)
		}
	}
	return byFile, nil
}

// read reads a /proc file into the sampler's buffer (valid until the next read).
func (s *treeSampler) read(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	s.buf = s.buf[:0]
	for {
		if len(s.buf) == cap(s.buf) {
			s.buf = append(s.buf, 0)[:len(s.buf)]
		}
		n, err := f.Read(s.buf[len(s.buf):cap(s.buf)])
		s.buf = s.buf[:len(s.buf)+n]
		if err != nil || n == 0 {
			if len(s.buf) == 0 {
				return nil, errors.New(path + " is empty")
			}
			return s.buf, nil
		}
	}
}

// kibField parses "Name:   123 kB" into bytes.
func kibField(line []byte) int64 {
	f := bytes.Fields(line)
	if len(f) < 2 {
		return 0
	}
	kib, _ := strconv.ParseInt(string(f[1]), 10, 64)
	return kib << 10
}
