package results

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// File names inside a run folder. They are also the attestation's subject
// names (outputs as "outputs/<path>"), so verify can find each subject's file.
const (
	RunFile      = "run.json"
	MetricsFile  = "metrics.json"
	LogFile      = "log.txt"
	EnvelopeFile = "provenance.intoto.jsonl"
	OutputsDir   = "outputs"
	ReadmeFile   = "README.md"
	PlotFile     = "plot.svg"
	DefaultRoot  = "results"
)

// Layout places results in a repository. Root is the results folder
// ("results" unless the repository's expsync.yaml says otherwise).
type Layout struct {
	Root string
}

func (l Layout) root() string {
	if l.Root == "" {
		return DefaultRoot
	}
	return strings.Trim(l.Root, "/")
}

// ExperimentDir is the folder of one experiment's runs.
func (l Layout) ExperimentDir(experiment string) string {
	return path.Join(l.root(), experiment)
}

// RunDir is one run's folder.
func (l Layout) RunDir(experiment, runID string) string {
	return path.Join(l.root(), experiment, runID)
}

// Limits decide which files are committed; larger ones stay in the store,
// recorded by digest only.
type Limits struct {
	// MaxOutputFileBytes: outputs larger than this are not committed.
	MaxOutputFileBytes int64
	// MaxRunOutputBytes: once the committed outputs of a run reach this
	// total, further outputs are not committed (smallest first wins).
	MaxRunOutputBytes int64
	// MaxLogBytes: a longer log is not committed (it stays in the store).
	MaxLogBytes int64
}

// DefaultLimits keep a results commit reviewable.
var DefaultLimits = Limits{
	MaxOutputFileBytes: 1 << 20,
	MaxRunOutputBytes:  8 << 20,
	MaxLogBytes:        256 << 10,
}

// OutputFile is an output as produced: its content is read only when it is
// small enough to commit.
type OutputFile struct {
	Path   string
	SHA256 string
	Size   int64
	// Open returns the content; it is called only for committed outputs.
	Open func() ([]byte, error)
}

// FolderFromFiles rebuilds a folder from its files (names relative to the
// folder, as the run cache keeps them); run.json gives the record.
func FolderFromFiles(layout Layout, files map[string][]byte) (*Folder, error) {
	rec, err := ParseRecord(files[RunFile])
	if err != nil {
		return nil, err
	}
	f := &Folder{Dir: layout.RunDir(rec.Experiment, rec.RunID), Record: rec, files: map[string][]byte{}}
	for name, data := range files {
		if err := checkRelPath(name); err != nil {
			return nil, fmt.Errorf("run %s: file %q: %w", rec.RunID, name, err)
		}
		f.files[name] = data
	}
	if _, ok := f.files[MetricsFile]; !ok {
		return nil, fmt.Errorf("run %s: %s is missing", rec.RunID, MetricsFile)
	}
	return f, nil
}

// RelFiles returns the folder's files keyed by their name in the folder.
func (f *Folder) RelFiles() map[string][]byte {
	out := make(map[string][]byte, len(f.files))
	for name, data := range f.files {
		out[name] = data
	}
	return out
}

// Folder is one run's results folder before and after signing.
type Folder struct {
	Dir    string
	Record *Record
	files  map[string][]byte // relative to Dir
}

// BuildFolder decides what of a run is committed, fills the record's
// Outputs and log fields accordingly, and encodes run.json and metrics.json.
// metrics is the raw metrics file the run wrote (nil when none); it is
// re-encoded deterministically. log (nil when none) is committed as log.txt
// when it fits MaxLogBytes, else recorded by digest only (its Path is
// ignored). The envelope is added later with
// SetEnvelope, after signing the Subjects.
func BuildFolder(layout Layout, rec *Record, metrics []byte, log *OutputFile, outputs []OutputFile, limits Limits) (*Folder, error) {
	if rec.RunID == "" || rec.Experiment == "" {
		return nil, fmt.Errorf("build results folder: run ID and experiment are required")
	}
	f := &Folder{Dir: layout.RunDir(rec.Experiment, rec.RunID), Record: rec, files: map[string][]byte{}}

	// Smallest outputs first, so one huge output does not crowd out the
	// small ones a reviewer wants to read; ties broken by path.
	sorted := append([]OutputFile(nil), outputs...)
	sort.Slice(sorted, func(i, j int) bool {
		if sorted[i].Size != sorted[j].Size {
			return sorted[i].Size < sorted[j].Size
		}
		return sorted[i].Path < sorted[j].Path
	})
	var total int64
	rec.Outputs = rec.Outputs[:0]
	for _, o := range sorted {
		if err := checkRelPath(o.Path); err != nil {
			return nil, fmt.Errorf("build results folder of run %s: output %q: %w", rec.RunID, o.Path, err)
		}
		out := Output{Path: o.Path, SHA256: o.SHA256, Size: o.Size}
		// A name Git refuses on some platform (a result cached by an
		// older expsync) is recorded by digest, never committed: the
		// commit would break every later checkout.
		gitOK := tree.CheckResultPath(path.Join(f.Dir, OutputsDir, o.Path)) == nil
		if gitOK && o.Size <= limits.MaxOutputFileBytes && total+o.Size <= limits.MaxRunOutputBytes && o.Open != nil {
			data, err := o.Open()
			if err != nil {
				return nil, fmt.Errorf("build results folder of run %s: read output %s: %w", rec.RunID, o.Path, err)
			}
			if got := contract.SHA256Hex(data); got != o.SHA256 {
				return nil, fmt.Errorf("build results folder of run %s: output %s has sha256 %s, its manifest says %s", rec.RunID, o.Path, got, o.SHA256)
			}
			f.files[path.Join(OutputsDir, o.Path)] = data
			out.Committed = true
			total += o.Size
		}
		rec.Outputs = append(rec.Outputs, out)
	}
	sort.Slice(rec.Outputs, func(i, j int) bool { return rec.Outputs[i].Path < rec.Outputs[j].Path })

	rec.LogSHA256, rec.LogSize, rec.LogCommitted = "", 0, false
	if log != nil {
		rec.LogSHA256, rec.LogSize = log.SHA256, log.Size
		if log.Size <= limits.MaxLogBytes && log.Open != nil {
			data, err := log.Open()
			if err != nil {
				return nil, fmt.Errorf("build results folder of run %s: read log: %w", rec.RunID, err)
			}
			if got := contract.SHA256Hex(data); got != log.SHA256 {
				return nil, fmt.Errorf("build results folder of run %s: log has sha256 %s, its result says %s", rec.RunID, got, log.SHA256)
			}
			f.files[LogFile] = data
			rec.LogCommitted = true
		}
	}

	m, err := NormalizeMetrics(metrics)
	if err != nil {
		return nil, fmt.Errorf("build results folder of run %s: %w", rec.RunID, err)
	}
	if len(m) > contract.MaxMetricsBytes {
		rec.MetricsError = fmt.Sprintf("metrics.json would have %d bytes, over the limit of %d bytes for a run's metrics; not recorded (report fewer metrics)", len(m), contract.MaxMetricsBytes)
		m = []byte("{}\n")
	}
	f.files[MetricsFile] = m
	rec.Reason, rec.MetricsError = contract.Truncate(rec.Reason), contract.Truncate(rec.MetricsError)
	if err := f.encodeRecord(); err != nil {
		return nil, err
	}
	if n := len(f.files[RunFile]); n > contract.MaxRecordBytes {
		if err := f.DropOutputs(fmt.Sprintf("run.json would have %d bytes, over the limit of %d bytes for a run's record", n, contract.MaxRecordBytes)); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// encodeRecord writes run.json from the record.
func (f *Folder) encodeRecord() error {
	runJSON, err := MarshalRecord(f.Record)
	if err != nil {
		return fmt.Errorf("build results folder of run %s: encode run.json: %w", f.Record.RunID, err)
	}
	f.files[RunFile] = runJSON
	return nil
}

// DropOutputs turns the folder into a Failed record without its list of
// outputs, for a run whose record or attestation would exceed expsync's
// limits (contract/limits.go): what is written must be readable, so a
// reader never takes the genuine folder for a forged one. The reason says
// which limit and what to do; the outputs stay in the store. Sign the
// folder (again) afterwards.
func (f *Folder) DropOutputs(why string) error {
	rec := f.Record
	rec.Reason = contract.Truncate(fmt.Sprintf("%s: the run's %d outputs are not listed and stay in the store (write fewer files or shorter names, or pack them into an archive)", why, len(rec.Outputs)))
	rec.Status, rec.Outputs = contract.Failed, nil
	for name := range f.files {
		if strings.HasPrefix(name, OutputsDir+"/") {
			delete(f.files, name)
		}
	}
	delete(f.files, EnvelopeFile)
	if err := f.encodeRecord(); err != nil {
		return err
	}
	if n := len(f.files[RunFile]); n > contract.MaxRecordBytes {
		return fmt.Errorf("build results folder of run %s: run.json has %d bytes without its outputs, over the limit of %d", rec.RunID, n, contract.MaxRecordBytes)
	}
	return nil
}

// Subject is a file the attestation must cover, named relative to the run
// folder.
type Subject struct {
	Name   string
	SHA256 string
}

// Subjects lists what the statement must cover: run.json, metrics.json, the
// log (committed or not) and every output (committed or not), sorted by name.
func (f *Folder) Subjects() []Subject {
	subs := []Subject{
		{Name: RunFile, SHA256: contract.SHA256Hex(f.files[RunFile])},
		{Name: MetricsFile, SHA256: contract.SHA256Hex(f.files[MetricsFile])},
	}
	if f.Record.LogSHA256 != "" {
		subs = append(subs, Subject{Name: LogFile, SHA256: f.Record.LogSHA256})
	}
	for _, o := range f.Record.Outputs {
		subs = append(subs, Subject{Name: path.Join(OutputsDir, o.Path), SHA256: o.SHA256})
	}
	sort.Slice(subs, func(i, j int) bool { return subs[i].Name < subs[j].Name })
	return subs
}

// SetEnvelope adds the signed DSSE envelope as provenance.intoto.jsonl (one
// JSON line, newline terminated, as the JSON Lines format wants).
func (f *Folder) SetEnvelope(envelope []byte) {
	line := bytes.TrimSpace(envelope)
	line = append(append([]byte(nil), line...), '\n')
	f.files[EnvelopeFile] = line
}

// File returns one file of the folder by its name relative to the folder.
func (f *Folder) File(name string) []byte { return f.files[name] }

// Files returns the folder's files keyed by repository path, ready for a
// commit.
func (f *Folder) Files() map[string][]byte {
	out := make(map[string][]byte, len(f.files))
	for name, data := range f.files {
		out[path.Join(f.Dir, name)] = data
	}
	return out
}

// NormalizeMetrics re-encodes a flat metrics object deterministically.
// Numbers keep their exact spelling; nil or empty input gives "{}". A file
// that is not a JSON object is an error naming what was found.
func NormalizeMetrics(raw []byte) ([]byte, error) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return []byte("{}\n"), nil
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("metrics file is not a JSON object of numbers: %w", err)
	}
	if m == nil {
		m = map[string]any{}
	}
	return MarshalJSON(m)
}

// ParseMetrics reads a metrics.json into numbers; values that are not
// numbers are kept as their JSON text in the second map.
func ParseMetrics(data []byte) (map[string]float64, map[string]string, error) {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	var m map[string]any
	if err := dec.Decode(&m); err != nil {
		return nil, nil, fmt.Errorf("parse metrics.json: %w", err)
	}
	nums := map[string]float64{}
	other := map[string]string{}
	for k, v := range m {
		if n, ok := v.(json.Number); ok {
			if f, err := n.Float64(); err == nil {
				nums[k] = f
				continue
			}
		}
		b, _ := json.Marshal(v)
		other[k] = string(b)
	}
	return nums, other, nil
}

// checkRelPath refuses paths that would leave the run folder.
func checkRelPath(p string) error {
	if p == "" || strings.HasPrefix(p, "/") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("not a clean relative path")
	}
	return nil
}
