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
	"slices"
	"strconv"
	"strings"
	"syscall"
	"unicode/utf8"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// outputRules are what collectOutputs enforces on a run's outputs.
type outputRules struct {
	// maxBytes bounds the outputs' total size, maxFiles their number.
	maxBytes int64
	maxFiles int
	// required: a declared output that is missing is a problem (a run
	// that exited 0); a failed run's missing outputs are skipped.
	required bool
	// secrets are the values no recorded name may hold.
	secrets []secretVar
}

// errTooManyOutputs stops the walk of a folder once the run's outputs
// exceed maxFiles: nothing more of them is hashed.
var errTooManyOutputs = errors.New("too many output files")

// collectOutputs hashes every declared output into the store and returns
// their manifest entries sorted by path. Folders (declared with a trailing
// "/") expand to their files; symlinks are recorded as data (their target)
// and never followed. A file whose name cannot be recorded — it holds a
// secret's value, Git refuses it, it is too long — is left out and the
// error says why, naming the declared output it came from (never a name
// holding a secret).
func collectOutputs(ctx context.Context, st store.Store, work string, declared []string, rules outputRules) ([]contract.File, error) {
	var m store.Manifest
	seen := map[string]bool{}
	var total, nameBytes int64
	files := 0
	var problems []string
	// secretNamed counts, per declared output, the files whose names hold
	// a secret's value, and names the variables.
	secretNamed := map[string]int{}
	secretVars := map[string][]string{}
	var secretOrder []string
	add := func(decl, rel string, fi fs.FileInfo) error {
		if seen[rel] {
			return nil
		}
		seen[rel] = true
		if files++; files > rules.maxFiles {
			return errTooManyOutputs
		}
		if vars := secretsInName(rel, rules.secrets); len(vars) > 0 {
			if secretNamed[decl] == 0 {
				secretOrder = append(secretOrder, decl)
			}
			secretNamed[decl]++
			secretVars[decl] = appendNew(secretVars[decl], vars...)
			return nil
		}
		if why := UncommittableName(rel); why != "" {
			// Recorded, it would fail the results commit of every run of
			// the branch (Git) or the run's attestation (in-toto): the run
			// fails instead, without it.
			problems = append(problems, fmt.Sprintf("output file %s is left out: %s; rename it", quoteShort(rel), why))
			return nil
		}
		if nameBytes += int64(len(rel)); nameBytes > contract.MaxOutputNameBytes {
			return fmt.Errorf("the names of the output files exceed %d bytes in all, the limit for one run (run.json and the attestation list every output); write fewer files or pack them into an archive", contract.MaxOutputNameBytes)
		}
		e, err := hashOutput(ctx, st, work, rel, fi, rules.maxBytes-total)
		if err != nil {
			return err
		}
		total += e.Size
		m.Entries = append(m.Entries, e)
		return nil
	}
	var stop error
	for _, decl := range declared {
		rel, _ := cleanRel(strings.TrimSuffix(decl, "/")) // checked by Validate
		fi, err := lstatInside(work, rel)
		if errors.Is(err, fs.ErrNotExist) {
			if rules.required {
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
			if stop = add(decl, rel, fi); stop != nil {
				break
			}
			continue
		}
		root := filepath.Join(work, filepath.FromSlash(rel))
		stop = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				// The path may hold a secret's value: name the
				// declared output and the system's reason only.
				var pe *fs.PathError
				if errors.As(err, &pe) {
					err = pe.Err
				}
				problems = append(problems, fmt.Sprintf("output %s: a file or folder under it cannot be read: %v", decl, err))
				if d != nil && d.IsDir() {
					return fs.SkipDir
				}
				return nil
			}
			if d.IsDir() {
				return nil
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			r, _ := filepath.Rel(work, p)
			return add(decl, filepath.ToSlash(r), fi)
		})
		if stop != nil {
			break
		}
	}
	for _, decl := range secretOrder {
		problems = append(problems, fmt.Sprintf("output %s holds %d file(s) whose names contain the value of %s; they are left out (a secret's value must never be part of a file name)",
			decl, secretNamed[decl], strings.Join(secretVars[decl], ", ")))
	}
	switch {
	case errors.Is(stop, errTooManyOutputs):
		return sorted(m), fmt.Errorf("outputs hold more than %d files, the limit for one run (limits.maxOutputFiles in expsync.yaml can lower it, up to %d); write fewer files or pack them into an archive",
			rules.maxFiles, contract.MaxOutputFiles)
	case stop != nil:
		return sorted(m), stop
	case len(problems) > 0:
		return sorted(m), errors.New(joinProblems(problems))
	}
	return sorted(m), nil
}

// joinProblems lists the first problems and counts the others, so one run
// with thousands of bad names gets a readable message.
func joinProblems(problems []string) string {
	const shown = 10
	if len(problems) <= shown {
		return strings.Join(problems, "; ")
	}
	return fmt.Sprintf("%s; and %d more problem(s)", strings.Join(problems[:shown], "; "), len(problems)-shown)
}

// quoteShort quotes a name for a message, cut to 120 bytes.
func quoteShort(name string) string {
	if len(name) > 120 {
		cut := 120
		for cut > 0 && name[cut]&0xc0 == 0x80 {
			cut--
		}
		return strconv.Quote(name[:cut]) + "…"
	}
	return strconv.Quote(name)
}

// secretsInName names the secrets whose values occur in a file's path.
func secretsInName(rel string, secrets []secretVar) []string {
	var vars []string
	for _, s := range secrets {
		if s.value != "" && strings.Contains(rel, s.value) {
			vars = appendNew(vars, s.name)
		}
	}
	return vars
}

func appendNew(list []string, items ...string) []string {
	for _, it := range items {
		if !slices.Contains(list, it) {
			list = append(list, it)
		}
	}
	return list
}

func sorted(m store.Manifest) []contract.File {
	m.Sort()
	return m.Entries
}

// hashOutput stores one output file (or symlink, as its target string).
func hashOutput(ctx context.Context, st store.Store, work, rel string, fi fs.FileInfo, room int64) (contract.File, error) {
	tooLarge := func(size int64) error {
		return fmt.Errorf("outputs exceed the limit: %s alone has %d bytes and %d bytes of the limit remain (raise limits.maxOutputBytes or write less)", rel, size, max(room, 0))
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		target, err := os.Readlink(filepath.Join(work, filepath.FromSlash(rel)))
		if err != nil {
			return contract.File{}, fmt.Errorf("output %s: %w", rel, err)
		}
		obj, err := st.Put(ctx, strings.NewReader(target), "")
		if err != nil {
			return contract.File{}, fmt.Errorf("store output %s: %w", rel, err)
		}
		return contract.File{Path: rel, Mode: store.ModeSymlink, SHA256: obj.SHA256, Size: obj.Size}, nil
	case fi.Mode().IsRegular():
		if fi.Size() > room {
			return contract.File{}, tooLarge(fi.Size())
		}
		mode := store.ModeFile
		if fi.Mode()&0o100 != 0 {
			mode = store.ModeExecutable
		}
		if fp, ok := st.(store.FilePutter); ok {
			// The run is over: move the file into the store by a link.
			obj, err := fp.PutFile(ctx, filepath.Join(work, filepath.FromSlash(rel)), room)
			if errors.Is(err, store.ErrTooLarge) {
				return contract.File{}, tooLarge(room + 1)
			}
			if err != nil {
				return contract.File{}, fmt.Errorf("store output %s: %w", rel, err)
			}
			return contract.File{Path: rel, Mode: mode, SHA256: obj.SHA256, Size: obj.Size}, nil
		}
		f, err := os.OpenFile(filepath.Join(work, filepath.FromSlash(rel)), os.O_RDONLY|syscall.O_NOFOLLOW, 0)
		if err != nil {
			return contract.File{}, fmt.Errorf("output %s: %w", rel, err)
		}
		defer f.Close()
		lr := &limitedReader{r: f, n: room}
		obj, err := st.Put(ctx, lr, "")
		if lr.exceeded {
			return contract.File{}, tooLarge(room + 1)
		}
		if err != nil {
			return contract.File{}, fmt.Errorf("store output %s: %w", rel, err)
		}
		return contract.File{Path: rel, Mode: mode, SHA256: obj.SHA256, Size: obj.Size}, nil
	default:
		return contract.File{}, fmt.Errorf("output %s is neither a file, a folder nor a symlink (%s)", rel, fi.Mode().Type())
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
func (r *attemptRunner) readMetrics(ctx context.Context, work string, res *contract.Result) {
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

// UncommittableName says why an output's path cannot be committed to Git
// or named in an attestation ("" when it can): Git's own path rules for
// every platform (tree.CheckResultPath), UTF-8 (in-toto subjects are JSON
// strings) and the length a results folder leaves for it. The Job
// executor applies it to the outputs a pod reports.
func UncommittableName(rel string) string {
	if !utf8.ValidString(rel) {
		return "its name is not UTF-8"
	}
	if len(rel) > contract.MaxOutputPathBytes {
		return fmt.Sprintf("its path has %d bytes, over the limit of %d (a checkout cannot create longer paths below results/)", len(rel), contract.MaxOutputPathBytes)
	}
	var pe *tree.PathError
	if err := tree.CheckResultPath(rel); errors.As(err, &pe) {
		if pe.Component != "" && pe.Component != rel {
			return fmt.Sprintf("%s %s", quoteShort(pe.Component), pe.Reason)
		}
		return "it " + pe.Reason
	} else if err != nil {
		return err.Error()
	}
	return ""
}
