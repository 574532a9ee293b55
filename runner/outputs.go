package runner

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/expsync/expsync/store"
)

// collectOutputs hashes every declared output into the store and returns
// their manifest entries sorted by path. Folders (declared with a trailing
// "/") expand to their files; symlinks are recorded as data (their target)
// and never followed. When required is false (a failed run), missing outputs
// are skipped silently.
func collectOutputs(ctx context.Context, st store.Store, work string, declared []string, limit int64, required bool) ([]store.Entry, error) {
	var m store.Manifest
	seen := map[string]bool{}
	var total int64
	var problems []string
	add := func(rel string, fi fs.FileInfo) error {
		if seen[rel] {
			return nil
		}
		seen[rel] = true
		if why := uncommittableName(rel); why != "" {
			// Recorded, it would fail the results commit of every run of
			// the branch (Git) or the run's attestation (in-toto): the run
			// fails instead, without it.
			problems = append(problems, fmt.Sprintf("output file %q is left out: %s; rename it", rel, why))
			return nil
		}
		e, err := hashOutput(ctx, st, work, rel, fi, limit-total)
		if err != nil {
			return err
		}
		total += e.Size
		m.Entries = append(m.Entries, e)
		return nil
	}
	for _, decl := range declared {
		rel, _ := cleanRel(strings.TrimSuffix(decl, "/")) // checked by Validate
		fi, err := lstatInside(work, rel)
		if errors.Is(err, fs.ErrNotExist) {
			if required {
				problems = append(problems, fmt.Sprintf("declared output %s was not produced", decl))
			}
			continue
		}
		if err != nil {
			problems = append(problems, fmt.Sprintf("output %s: %v", decl, inWork(work, err)))
			continue
		}
		if !fi.IsDir() {
			if strings.HasSuffix(decl, "/") && fi.Mode()&fs.ModeSymlink == 0 {
				problems = append(problems, fmt.Sprintf("output %s is declared as a folder but is a file", decl))
				continue
			}
			if err := add(rel, fi); err != nil {
				return sorted(m), err
			}
			continue
		}
		root := filepath.Join(work, filepath.FromSlash(rel))
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			if d.IsDir() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(work, p)
			return add(filepath.ToSlash(r), fi)
		})
		if err != nil {
			return sorted(m), err
		}
	}
	if len(problems) > 0 {
		return sorted(m), errors.New(strings.Join(problems, "; "))
	}
	return sorted(m), nil
}

func sorted(m store.Manifest) []store.Entry {
	m.Sort()
	return m.Entries
}

// hashOutput stores one output file (or symlink, as its target string).
func hashOutput(ctx context.Context, st store.Store, work, rel string, fi fs.FileInfo, room int64) (store.Entry, error) {
	tooLarge := func(size int64) error {
		return fmt.Errorf("outputs exceed the limit: %s alone has %d bytes and %d bytes of the limit remain (raise limits.maxOutputBytes or write less)", rel, size, max(room, 0))
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(filepath.Join(work, filepath.FromSlash(rel)))
		if err != nil {
			return store.Entry{}, fmt.Errorf("output %s: %w", rel, err)
		}
		obj, err := st.Put(ctx, strings.NewReader(target), "")
		if err != nil {
			return store.Entry{}, fmt.Errorf("store output %s: %w", rel, err)
		}
		return store.Entry{Path: rel, Mode: store.ModeSymlink, SHA256: obj.SHA256, Size: obj.Size}, nil
	case fi.Mode().IsRegular():
		if fi.Size() > room {
			return store.Entry{}, tooLarge(fi.Size())
		}
		mode := store.ModeFile
		if fi.Mode()&0o100 != 0 {
			mode = store.ModeExecutable
		}
		if fp, ok := st.(store.FilePutter); ok {
			// The run is over: move the file into the store by a link.
			obj, err := fp.PutFile(ctx, filepath.Join(work, filepath.FromSlash(rel)), room)
			if errors.Is(err, store.ErrTooLarge) {
				return store.Entry{}, tooLarge(room + 1)
			}
			if err != nil {
				return store.Entry{}, fmt.Errorf("store output %s: %w", rel, err)
			}
			return store.Entry{Path: rel, Mode: mode, SHA256: obj.SHA256, Size: obj.Size}, nil
		}
		f, err := os.OpenFile(filepath.Join(work, filepath.FromSlash(rel)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return store.Entry{}, fmt.Errorf("output %s: %w", rel, err)
		}
		defer f.Close()
		lr := &limitedReader{r: f, n: room}
		obj, err := st.Put(ctx, lr, "")
		if lr.exceeded {
			return store.Entry{}, tooLarge(room + 1)
		}
		if err != nil {
			return store.Entry{}, fmt.Errorf("store output %s: %w", rel, err)
		}
		return store.Entry{Path: rel, Mode: mode, SHA256: obj.SHA256, Size: obj.Size}, nil
	default:
		return store.Entry{}, fmt.Errorf("output %s is neither a file, a folder nor a symlink (%s)", rel, fi.Mode().Type())
	}
}

// lstatInside stats rel under root without following any symlink on the way:
// a symlinked folder in the middle of the path is refused, a symlink at the
// end is returned as such.
func lstatInside(root, rel string) (fs.FileInfo, error) {
	parts := strings.Split(rel, "/")
	p := root
	for i, part := range parts {
		p = filepath.Join(p, part)
		fi, err := os.Lstat(p)
		if err != nil {
			return nil, err
		}
		if i == len(parts)-1 {
			return fi, nil
		}
		if fi.Mode()&fs.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symlink; outputs are never read through symlinks", strings.Join(parts[:i+1], "/"))
		}
		if !fi.IsDir() {
			return nil, fmt.Errorf("%s: %w", rel, fs.ErrNotExist)
		}
	}
	return nil, fs.ErrNotExist
}

// readMetrics reads the contract's metrics file into res; any problem is
// recorded in res.MetricsError, never fatal.
func (r *attemptRunner) readMetrics(ctx context.Context, work string, res *Result) {
	res.Metrics, res.MetricsSHA256, res.MetricsError = nil, "", ""
	if r.c.Metrics == "" {
		return
	}
	rel, _ := cleanRel(r.c.Metrics)
	fi, err := lstatInside(work, rel)
	if err != nil {
		res.MetricsError = fmt.Sprintf("metrics file %s: %v", r.c.Metrics, inWork(work, err))
		return
	}
	if !fi.Mode().IsRegular() {
		res.MetricsError = fmt.Sprintf("metrics file %s is not a regular file", r.c.Metrics)
		return
	}
	f, err := os.OpenFile(filepath.Join(work, filepath.FromSlash(rel)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		res.MetricsError = fmt.Sprintf("metrics file %s: %v", r.c.Metrics, inWork(work, err))
		return
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, r.opts.MaxMetricsBytes+1))
	if err != nil {
		res.MetricsError = fmt.Sprintf("metrics file %s: %v", r.c.Metrics, inWork(work, err))
		return
	}
	if int64(len(data)) > r.opts.MaxMetricsBytes {
		res.MetricsError = fmt.Sprintf("metrics file %s exceeds %d bytes", r.c.Metrics, r.opts.MaxMetricsBytes)
		return
	}
	metrics, err := ParseMetrics(data)
	if err != nil {
		res.MetricsError = fmt.Sprintf("metrics file %s: %v", r.c.Metrics, inWork(work, err))
		return
	}
	obj, err := r.st.Put(ctx, bytes.NewReader(data), "")
	if err != nil {
		res.MetricsError = fmt.Sprintf("store metrics file %s: %v", r.c.Metrics, err)
		return
	}
	res.Metrics, res.MetricsSHA256 = metrics, obj.SHA256
}

// ParseMetrics parses a flat JSON object of finite numbers.
func ParseMetrics(data []byte) (map[string]float64, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var raw map[string]any
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("not a JSON object: %v", err)
	}
	if raw == nil {
		return nil, errors.New("not a JSON object (null)")
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data after the JSON object")
	}
	out := make(map[string]float64, len(raw))
	for k, v := range raw {
		n, ok := v.(json.Number)
		if !ok {
			return nil, fmt.Errorf("metric %q is %T, want a number (metrics are a flat object of numbers)", k, v)
		}
		f, err := n.Float64()
		if err != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			return nil, fmt.Errorf("metric %q: %s is not a finite number", k, n)
		}
		out[k] = f
	}
	return out, nil
}

// inWork names files of the work folder relative to it in an error's text
// (os errors carry absolute paths, meaningless in a results commit).
func inWork(work string, err error) string {
	if errors.Is(err, fs.ErrNotExist) {
		return "not found"
	}
	return strings.ReplaceAll(err.Error(), work+string(filepath.Separator), "")
}

// uncommittableName says why an output's path cannot be committed to Git
// or named in an attestation ("" when it can).
func uncommittableName(rel string) string {
	if !utf8.ValidString(rel) {
		return "its name is not UTF-8"
	}
	if strings.ContainsAny(rel, "\\\x00") {
		return "its name has a backslash"
	}
	for _, seg := range strings.Split(rel, "/") {
		if strings.EqualFold(seg, ".git") {
			return "Git refuses a .git folder or file inside a commit"
		}
	}
	return ""
}
