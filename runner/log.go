package runner

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
)

// tailBytes is how much of the log's end a Result carries.
const tailBytes = 4096

// logCapture writes the command's output to a file up to a limit and keeps
// the last bytes in memory, so a truncated log still ends with the output's
// real end.
type logCapture struct {
	mu        sync.Mutex
	f         *os.File
	path      string
	limit     int64
	written   int64
	total     int64
	tail      []byte // ring of the last tailCap bytes
	truncated bool
	closed    bool
}

const tailCap = 2 * tailBytes

func newLogCapture(path string, limit int64) (*logCapture, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, err
	}
	return &logCapture{f: f, path: path, limit: limit}, nil
}

func (l *logCapture) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total += int64(len(p))
	if room := l.limit - l.written; room > 0 && !l.closed {
		chunk := p
		if int64(len(chunk)) > room {
			chunk = chunk[:room]
		}
		n, _ := l.f.Write(chunk)
		l.written += int64(n)
	}
	if l.total > l.written {
		l.truncated = true
	}
	l.tail = append(l.tail, p...)
	if len(l.tail) > tailCap {
		l.tail = append(l.tail[:0], l.tail[len(l.tail)-tailCap:]...)
	}
	// Always report success: a full log must not make the command block
	// or die of SIGPIPE.
	return len(p), nil
}

func (l *logCapture) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return
	}
	l.closed = true
	if l.truncated {
		// recordLog appends the (redacted) tail after this marker.
		fmt.Fprintf(l.f, "\n[expsync: log truncated: %d of %d bytes kept; the last bytes follow]\n", l.written, l.total)
	}
	l.f.Close()
}

// recordLog redacts the secrets from the log, stores it and records its
// digest, size and tail in res.
func (r *attemptRunner) recordLog(ctx context.Context, p processResult, res *Result) {
	if p.log == nil {
		return
	}
	data, err := os.ReadFile(p.log.path)
	if err != nil {
		res.Error = fmt.Sprintf("read log: %v", err)
		return
	}
	tail := redact(p.log.tail, r.secrets)
	if len(tail) > tailBytes {
		tail = tail[len(tail)-tailBytes:]
	}
	data = redact(data, r.secrets)
	if p.log.truncated {
		data = append(data, tail...)
	}
	obj, err := r.st.Put(ctx, bytes.NewReader(data), "")
	if err != nil {
		res.Error = fmt.Sprintf("store log: %v", err)
		return
	}
	res.LogSHA256, res.LogSize, res.LogTruncated = obj.SHA256, obj.Size, p.log.truncated
	res.LogTail = string(bytes.ToValidUTF8(tail, []byte("\uFFFD")))
}

// redact replaces every secret value with a marker. Secrets are sorted
// longest first, so one containing another is replaced whole.
func redact(b []byte, secrets []string) []byte {
	for _, s := range secrets {
		if s == "" {
			continue
		}
		b = bytes.ReplaceAll(b, []byte(s), []byte("[REDACTED]"))
	}
	return b
}
