package runner

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"sync"

	"github.com/expsync/expsync/contract"

	"github.com/expsync/expsync/internal/redact"
)

// tailBytes is how much of the log's end a Result carries.
const tailBytes = 4096

// logCapture keeps the command's output up to a limit: in memory while it
// is small (most logs), spilled to a file beyond logMemMax. It also keeps
// the last bytes, so a truncated log still ends with the output's real end.
type logCapture struct {
	mu        sync.Mutex
	mem       []byte
	f         *os.File // nil until spilled
	path      string
	limit     int64
	written   int64
	total     int64
	tail      []byte // the last tailCap bytes
	truncated bool
	closed    bool
	err       error
	red       *streamRedactor // nil when the run has no secrets
}

const (
	tailCap   = 2 * tailBytes
	logMemMax = 1 << 20
)

// newLogCapture returns a capture that redacts secrets on the stream, before
// the size limit and the tail cut it: a secret straddling either cut would
// otherwise no longer match in full and leak its prefix or suffix.
func newLogCapture(path string, limit int64, secrets []string) (*logCapture, error) {
	l := &logCapture{path: path, limit: limit}
	if len(secrets) > 0 {
		l.red = newStreamRedactor(secrets)
	}
	return l, nil
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.red != nil {
		l.red.write(p, l.emit)
	} else {
		l.emit(p)
	}
	// Always report success: a full log must not make the command block
	// or die of SIGPIPE.
	return len(p), nil
}

// emit takes redacted bytes: the kept head up to the limit, and the tail.
func (l *logCapture) emit(p []byte) {
	l.total += int64(len(p))
	if room := l.limit - l.written; room > 0 && !l.closed {
		chunk := p
		if int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		l.keep(chunk)
	}
	if l.total > l.written {
		l.truncated = true
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > tailCap {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-tailCap:]...)
	}
}

func (l *logCapture) keep(chunk []byte) {
	if l.f == nil && l.written+int64(len(chunk)) > logMemMax {
		f, err := os.OpenFile(l.path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if err != nil {
			l.err = err
			return
		}
		if _, err := f.Write(l.mem); err != nil {
			l.err = err
		}
		l.f, l.mem = f, nil
	}
	if l.f != nil {
		if _, err := l.f.Write(chunk); err != nil && l.err == nil {
			l.err = err
		}
	} else {
		l.mem = append(l.mem, chunk...)
	}
	l.written += int64(len(chunk))
}

func (l *logCapture) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	if l.red != nil {
		l.red.flush(l.emit)
	}
	if l.truncated {
		// recordLog appends the (redacted) tail after this marker.
		marker := fmt.Sprintf("\n[expsync: log truncated: %d of %d bytes kept; the last bytes follow]\n", l.written, l.total)
		l.written = 0 // let the marker through the limit
		l.limit = int64(len(marker))
		l.keep([]byte(marker))
	}
	l.closed = true
	if l.f != nil {
		l.f.Close()
	}
}

// open reads the kept log: from memory, or from the file it spilled to,
// so storing a large log never holds it in memory.
func (l *logCapture) open() (io.ReadCloser, error) {
	if l.err != nil {
		return nil, l.err
	}
	if l.f == nil {
		return io.NopCloser(bytes.NewReader(l.mem)), nil
	}
	return os.Open(l.path)
}

// recordLog stores the log (redacted as it was captured) and records its
// digest, size and tail in res.
func (r *attemptRunner) recordLog(ctx context.Context, p processResult, res *contract.Result) {
	if p.log == nil {
		return
	}
	rc, err := p.log.open()
	if err != nil {
		res.Error = fmt.Sprintf("read log: %v", err)
		return
	}
	defer rc.Close()
	tail := p.log.tail
	if len(tail) > tailBytes {
		tail = tail[len(tail)-tailBytes:]
	}
	var body io.Reader = rc
	if p.log.truncated {
		body = io.MultiReader(rc, bytes.NewReader(tail))
	}
	obj, err := r.st.Put(ctx, body, "")
	if err != nil {
		res.Error = fmt.Sprintf("store log: %v", err)
		return
	}
	res.LogSHA256, res.LogSize, res.LogTruncated = obj.SHA256, obj.Size, p.log.truncated
	res.LogTail = string(bytes.ToValidUTF8(tail, []byte("\uFFFD")))
}

// redactMarker replaces secret values in logs.
const redactMarker = redact.Marker

// streamRedactor replaces every occurrence of every secret (overlapping
// ones included) with one marker per run of secret bytes, in a stream
// written in chunks, with the same result as over the whole stream at once
// (redactWhole, in the tests): it holds back the last
// len(longest secret)-1 bytes (the start of a secret may be among them),
// remembers which held bytes already belong to a match, and merges a run of
// secret bytes that spans two chunks into one marker.
type streamRedactor struct {
	secrets [][]byte
	hold    int    // bytes held back
	buf     []byte // held (and new) raw bytes
	mask    []bool // buf's bytes that belong to a secret
	inRun   bool   // the last emitted byte was a secret byte
	out     []byte
}

func newStreamRedactor(secrets []string) *streamRedactor {
	r := &streamRedactor{}
	for _, s := range secrets {
		if s == "" {
			continue
		}
		r.secrets = append(r.secrets, []byte(s))
		r.hold = max(r.hold, len(s)-1)
	}
	return r
}

func (r *streamRedactor) write(p []byte, emit func([]byte)) {
	r.buf = append(r.buf, p...)
	for len(r.mask) < len(r.buf) {
		r.mask = append(r.mask, false)
	}
	// Every match ending in the new bytes starts within buf (at most
	// hold bytes before them); matches already marked are marked again.
	for _, s := range r.secrets {
		for from := 0; from <= len(r.buf)-len(s); {
			i := bytes.Index(r.buf[from:], s)
			if i < 0 {
				break
			}
			for k := from + i; k < from+i+len(s); k++ {
				r.mask[k] = true
			}
			from += i + 1
		}
	}
	if n := len(r.buf) - r.hold; n > 0 {
		r.emitFirst(n, emit)
	}
}

// flush emits everything held (at the end of the stream).
func (r *streamRedactor) flush(emit func([]byte)) { r.emitFirst(len(r.buf), emit) }

func (r *streamRedactor) emitFirst(n int, emit func([]byte)) {
	out := r.out[:0]
	for i := 0; i < n; i++ {
		if !r.mask[i] {
			out = append(out, r.buf[i])
			r.inRun = false
			continue
		}
		if !r.inRun {
			out = append(out, redactMarker...)
			r.inRun = true
		}
	}
	r.out = out
	if len(out) > 0 {
		emit(out)
	}
	rest := copy(r.buf, r.buf[n:])
	copy(r.mask, r.mask[n:])
	r.buf, r.mask = r.buf[:rest], r.mask[:rest]
}
