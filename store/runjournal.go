package store

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// runJournal holds the run cache's files (result.json, ...) in one
// append-only file, runs/files.journal, shared by every process using the
// store, instead of one file per run: creating a small file costs ~0.6 ms
// of CPU on ext4 on our 2-core machines (journalled inode and directory
// updates), appending one costs ~3 µs — on a sweep of trivial runs that
// was a fifth of `expsync run`'s own cost per run
// (BenchmarkPutRunFileJournalVsFiles).
//
// A record is a header line and the data, then a newline:
//
//	expsync-runfile 1 <runID> <name> <size> <sha256 of data>\n<data>\n
//
// Each record is appended by one write(2) on an O_APPEND descriptor, so
// records of concurrent writers (goroutines or processes) never interleave.
// A record torn by a crash fails its size, digest or final newline and is
// skipped; the scan finds the next header after it. The newest record of a
// run file wins. Nothing is fsynced (see the package comment).
//
// Readers keep an index of the records they scanned (~180 bytes per run
// file in memory) and scan only what was appended since, so a lookup after
// another process's append still finds it. The index may go stale: the
// journal deleted (a cache cleared by hand), replaced or truncated while
// the store is open. So a lookup checks that the path still names the file
// it indexed, and no smaller, and a record read by its offset must still
// have its digest; otherwise the journal is indexed again from the start.
// A writer likewise reopens the path when it names another file, so its
// appends never go to a deleted file no one else reads.
type runJournal struct {
	path string

	// wmu guards the writer: appends share it (O_APPEND keeps their
	// records apart), reopening takes it alone, so a descriptor is never
	// closed under a write.
	wmu sync.RWMutex
	w   *os.File // opened on first append

	mu      sync.Mutex // guards the reader
	r       *os.File   // opened on first lookup
	scanned int64      // bytes of the file indexed so far
	index   map[string]span
}

type span struct {
	off, size int64
	sum       [32]byte // the record's digest, checked again on every read
}

const (
	journalMagic = "expsync-runfile 1 "
	// maxRunFile bounds one record, so a corrupt header cannot make a scan
	// read gigabytes.
	maxRunFile = 64 << 20
	// maxHeader bounds a header line: magic, a 64-hex run ID, a name of at
	// most 128 bytes, a size and a digest.
	maxHeader = 512
)

func runFileKey(runID, name string) string { return runID + "/" + name }

func (j *runJournal) append(runID, name string, data []byte) error {
	if len(data) > maxRunFile {
		return fmt.Errorf("%d bytes is more than a run file may hold (%d)", len(data), maxRunFile)
	}
	sum := sha256.Sum256(data)
	rec := make([]byte, 0, len(journalMagic)+len(runID)+len(name)+100+len(data))
	rec = append(rec, journalMagic...)
	rec = append(rec, runID...)
	rec = append(rec, ' ')
	rec = append(rec, name...)
	rec = append(rec, ' ')
	rec = strconv.AppendInt(rec, int64(len(data)), 10)
	rec = append(rec, ' ')
	rec = hex.AppendEncode(rec, sum[:])
	rec = append(rec, '\n')
	rec = append(rec, data...)
	rec = append(rec, '\n')

	for attempt := 0; ; attempt++ {
		j.wmu.RLock()
		// The second attempt writes to what reopenWriter opened even if
		// the path changed again meanwhile, rather than loop.
		if j.writerCurrent() || (attempt > 0 && j.w != nil) {
			// One write: O_APPEND places it at the end atomically. A
			// short write (a full disk) leaves a torn record that readers
			// skip.
			n, err := j.w.Write(rec)
			j.wmu.RUnlock()
			if err == nil && n != len(rec) {
				err = io.ErrShortWrite
			}
			return err
		}
		j.wmu.RUnlock()
		if err := j.reopenWriter(); err != nil {
			return err
		}
	}
}

// writerCurrent says whether w is open and still the file at the path:
// not deleted or replaced since, either of which unlinks it (an fstat of
// its link count costs a third of a stat of the path). wmu is held.
func (j *runJournal) writerCurrent() bool {
	if j.w == nil {
		return false
	}
	var st unix.Stat_t
	return unix.Fstat(int(j.w.Fd()), &st) == nil && st.Nlink > 0
}

// reopenWriter opens the path (creating the journal) for appends, in
// place of a descriptor of a file the path no longer names.
func (j *runJournal) reopenWriter() error {
	j.wmu.Lock()
	defer j.wmu.Unlock()
	if j.writerCurrent() {
		return nil // another append reopened it
	}
	f, err := os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	if errors.Is(err, os.ErrNotExist) {
		// The runs folder itself was removed (a cache cleared by hand).
		if err := os.MkdirAll(filepath.Dir(j.path), 0o755); err != nil {
			return err
		}
		f, err = os.OpenFile(j.path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
	}
	if err != nil {
		return err
	}
	if j.w != nil {
		j.w.Close()
	}
	j.w = f
	return nil
}

// lookup returns the newest record of runID's file name, scanning what was
// appended since the last lookup first; ok is false when there is none.
func (j *runJournal) lookup(runID, name string) (data []byte, ok bool, err error) {
	key := runFileKey(runID, name)
	j.mu.Lock()
	defer j.mu.Unlock()
	// The second attempt follows a record that no longer reads back as
	// indexed: the file was rewritten in place; index it afresh.
	for attempt := 0; ; attempt++ {
		present, err := j.open()
		if err != nil || !present {
			return nil, false, err // !present: nothing is cached in this store
		}
		if err := j.scan(); err != nil {
			return nil, false, err
		}
		sp, ok := j.index[key]
		if !ok {
			return nil, false, nil
		}
		data = make([]byte, sp.size+1)
		_, rerr := j.r.ReadAt(data, sp.off)
		if rerr == nil && data[sp.size] == '\n' && sha256.Sum256(data[:sp.size]) == sp.sum {
			return data[:sp.size], true, nil
		}
		if rerr != nil && !errors.Is(rerr, io.EOF) {
			return nil, false, fmt.Errorf("read run file %s of run %s from %s: %w", name, runID, j.path, rerr)
		}
		if attempt > 0 {
			return nil, false, fmt.Errorf("read run file %s of run %s from %s: the journal changes under the reader (rewritten while in use?)", name, runID, j.path)
		}
		j.forget()
	}
}

// open makes j.r the file at j.path, indexed from the start when it is
// not the file indexed so far or is shorter than what was indexed (the
// journal was deleted, replaced or truncated). present is false when there
// is no journal. j.mu is held.
func (j *runJournal) open() (present bool, err error) {
	fi, err := os.Stat(j.path)
	if errors.Is(err, os.ErrNotExist) {
		j.forget()
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if j.r != nil {
		held, err := j.r.Stat()
		if err == nil && os.SameFile(fi, held) && held.Size() >= j.scanned {
			return true, nil
		}
		j.forget()
	}
	f, err := os.Open(j.path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil // deleted since the Stat
	}
	if err != nil {
		return false, err
	}
	j.r, j.index, j.scanned = f, map[string]span{}, 0
	return true, nil
}

// forget closes the reader and drops its index. j.mu is held.
func (j *runJournal) forget() {
	if j.r != nil {
		j.r.Close()
	}
	j.r, j.index, j.scanned = nil, nil, 0
}

// scan indexes the records appended since the last scan. A record cut off
// by the end of the file may still be being written: the next scan starts
// at its header again.
func (j *runJournal) scan() error {
	fi, err := j.r.Stat()
	if err != nil {
		return err
	}
	end := fi.Size()
	if end <= j.scanned {
		return nil
	}
	br := bufio.NewReaderSize(io.NewSectionReader(j.r, j.scanned, end-j.scanned), 64<<10)
	pos := j.scanned
	for pos < end {
		line, err := br.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// Too long for a header: the remains of a torn record. Skip to
			// the line's end, or to a header glued to those remains.
			pos = j.skipLongLine(br, line, err, pos, end)
			continue
		}
		if err != nil { // io.EOF: a partial last line, maybe being written
			break
		}
		lineStart := pos
		pos += int64(len(line))
		// A header may follow the remains of a torn record on its line.
		runID, name, size, sum, ok := headerIn(line[:len(line)-1])
		if !ok {
			continue
		}
		if pos+size+1 > end {
			// Cut off by the end of the file: torn by a crash if another
			// record follows it, else maybe still being written (look
			// again from this header next time).
			next, err := j.nextHeader(pos, end)
			if err != nil {
				return err
			}
			if next < 0 {
				pos = lineStart
				break
			}
			pos = next
			br.Reset(io.NewSectionReader(j.r, pos, end-pos))
			continue
		}
		data := make([]byte, size+1)
		if _, err := io.ReadFull(br, data); err != nil {
			return fmt.Errorf("read %s: %w", j.path, err)
		}
		if got := sha256.Sum256(data[:size]); data[size] != '\n' || got != sum {
			// Torn: the bytes after the header are another record's or a
			// crash's. Rescan them for headers.
			br.Reset(io.NewSectionReader(j.r, pos, end-pos))
			continue
		}
		j.index[runFileKey(runID, name)] = span{pos, size, sum}
		pos += size + 1
	}
	j.scanned = pos
	return nil
}

// nextHeader returns the offset of the first whole header line in
// [from, end), or -1. from..end is shorter than one record (at most
// maxRunFile).
func (j *runJournal) nextHeader(from, end int64) (int64, error) {
	buf := make([]byte, end-from)
	if _, err := j.r.ReadAt(buf, from); err != nil {
		return 0, fmt.Errorf("read %s: %w", j.path, err)
	}
	for off := 0; ; {
		nl := bytes.IndexByte(buf[off:], '\n')
		if nl < 0 {
			return -1, nil
		}
		if at := headerStart(buf[off : off+nl]); at >= 0 {
			return from + int64(off+at), nil
		}
		off += nl + 1
	}
}

// skipLongLine skips a line longer than the reader's buffer, whose first
// chunk is line, and returns where scanning goes on: after the line, or at
// a header inside it (the reader then restarts there).
func (j *runJournal) skipLongLine(br *bufio.Reader, line []byte, err error, pos, end int64) int64 {
	for {
		if at := bytes.Index(line, []byte(journalMagic)); at >= 0 {
			pos += int64(at)
			br.Reset(io.NewSectionReader(j.r, pos, end-pos))
			return pos
		}
		pos += int64(len(line))
		if !errors.Is(err, bufio.ErrBufferFull) {
			return pos
		}
		line, err = br.ReadSlice('\n')
	}
}

// headerIn finds a header that ends line: the last part of it starting
// with the magic that parses (see headerStart).
func headerIn(line []byte) (runID, name string, size int64, sum [32]byte, ok bool) {
	at := headerStart(line)
	if at < 0 {
		return "", "", 0, sum, false
	}
	return parseHeader(line[at:])
}

// headerStart is where in line (without its newline) the first header
// that parses to the line's end begins, or -1.
func headerStart(line []byte) int {
	for at := 0; ; at++ {
		i := bytes.Index(line[at:], []byte(journalMagic))
		if i < 0 {
			return -1
		}
		at += i
		if _, _, _, _, ok := parseHeader(line[at:]); ok {
			return at
		}
	}
}

// parseHeader reads "expsync-runfile 1 <runID> <name> <size> <sha256>".
func parseHeader(h []byte) (runID, name string, size int64, sum [32]byte, ok bool) {
	if len(h) > maxHeader {
		return "", "", 0, sum, false
	}
	f := bytes.Fields(h[len(journalMagic):])
	if len(f) != 4 {
		return "", "", 0, sum, false
	}
	runID, name = string(f[0]), string(f[1])
	if checkRunID(runID) != nil || !runFilePattern.MatchString(name) {
		return "", "", 0, sum, false
	}
	size, err := strconv.ParseInt(string(f[2]), 10, 64)
	if err != nil || size < 0 || size > maxRunFile {
		return "", "", 0, sum, false
	}
	if len(f[3]) != 64 {
		return "", "", 0, sum, false
	}
	if _, err := hex.Decode(sum[:], f[3]); err != nil {
		return "", "", 0, sum, false
	}
	return runID, name, size, sum, true
}
