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
}

const (
	tailCap   = 2 * tailBytes
	logMemMax = 1 << 20
)

func newLogCapture(path string, limit int64) (*logCapture, error) {
	return &logCapture{path: path, limit: limit}, nil
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
		l.keep(chunk)
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

// bytes returns the kept log.
func (l *logCapture) bytes() ([]byte, error) {
	if l.err != nil {
		return nil, l.err
	}
	if l.f == nil {
		return l.mem, nil
	}
	return os.ReadFile(l.path)
}

// recordLog redacts the secrets from the log, stores it and records its
// digest, size and tail in res.
func (r *attemptRunner) recordLog(ctx context.Context, p processResult, res *Result) {
	if p.log == nil {
		return
	}
	data, err := p.log.bytes()
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

// redactMarker replaces secret values in logs.
const redactMarker = "[REDACTED]"

// redact replaces every occurrence of every secret in b (overlapping ones
// included) with one marker per run of secret bytes. It finds all
// occurrences in the original bytes first, so no replacement can hide or
// create a match for another secret.
func redact(b []byte, secrets []string) []byte {
	var mask []bool
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for from := 0; from <= len(b)-len(s); {
			i := bytes.Index(b[from:], []byte(s))
			if i < 0 {
				break
			}
			if mask == nil {
				mask = make([]bool, len(b))
			}
			for k := from + i; k < from+i+len(s); k++ {
				mask[k] = true
			}
			from += i + 1
		}
	}
	if mask == nil {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if !mask[i] {
			out = append(out, b[i])
			continue
		}
		out = append(out, redactMarker...)
		for i+1 < len(b) && mask[i+1] {
			i++
		}
	}
	return out
}
