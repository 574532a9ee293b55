package attest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"path"
	"strings"
	"time"

	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// A reproduction statement records that a run was executed again from its
// attestation alone and how the new outputs compare with the attested ones.
// It is an in-toto Statement v1 with its own predicate type, signed in a
// DSSE envelope like provenance, and lives beside the run it reproduces:
// results/<experiment>/<run-id>/reproductions/<name>.intoto.jsonl. Its
// subjects are the run folder's envelope and run.json, so it names exactly
// the attestation it reproduced, and a folder whose run.json changed after
// signing no longer matches it.
const (
	// ReproductionPredicateType is the predicate type of a reproduction
	// statement (what `cosign verify-blob-attestation --type` takes).
	ReproductionPredicateType = "https://expsync.dev/reproduction/v1"
	// ReproductionsDir is the folder of a run folder holding its
	// reproduction statements, one envelope per file.
	ReproductionsDir = "reproductions"
	// ReproductionSuffix ends every reproduction statement's file name.
	ReproductionSuffix = ".intoto.jsonl"
	// MaxReproductionNameLength bounds a statement's file name.
	MaxReproductionNameLength = 128
)

// Verdicts of a whole reproduction.
const (
	// VerdictIdentical: the exit status, every output and every metric are
	// bit for bit (or value for value) what the run attested.
	VerdictIdentical = "identical"
	// VerdictReproduced: everything the spec's tolerances require matched
	// (outputs not required to be exact differ, or metrics moved within
	// their declared tolerance).
	VerdictReproduced = "reproduced"
	// VerdictDiffers: the exit status, a required output or a metric
	// beyond its tolerance differs.
	VerdictDiffers = "differs"
)

// Verdicts of one output or metric.
const (
	ItemIdentical       = "identical"
	ItemWithinTolerance = "within-tolerance"
	// ItemMayDiffer: the output differs, and the spec does not require it
	// to match (it is not among spec.reproduce.exact).
	ItemMayDiffer = "may-differ"
	ItemDiffers   = "differs"
	// ItemMissing: attested, not produced again.
	ItemMissing = "missing"
	// ItemUnexpected: produced again, not attested.
	ItemUnexpected = "unexpected"
)

// Reproduction is the predicate of a reproduction statement.
type Reproduction struct {
	RunID      string `json:"runID"`
	Experiment string `json:"experiment"`
	// Verdict is VerdictIdentical, VerdictReproduced or VerdictDiffers.
	Verdict string `json:"verdict"`
	// Original is the run as attested; Reproduced the new execution.
	Original   RunOutcome `json:"original"`
	Reproduced RunOutcome `json:"reproduced"`
	// Status compares the exit status (status and exit code).
	Status  string             `json:"status"`
	Outputs []OutputComparison `json:"outputs,omitempty"`
	Metrics []MetricComparison `json:"metrics,omitempty"`
	// Log compares the log; it never decides the verdict (logs carry
	// times and process IDs).
	Log string `json:"log,omitempty"`
	// Tolerances are the rules that applied, and the spec they came from.
	Tolerances Tolerances `json:"tolerances"`
	// Materials are what the reproduction executed.
	Materials Materials `json:"materials"`
}

// RunOutcome is one execution of the run.
type RunOutcome struct {
	BuilderID  string `json:"builderID"`
	StartedOn  string `json:"startedOn,omitempty"`
	FinishedOn string `json:"finishedOn,omitempty"`
	Status     string `json:"status"`
	ExitCode   int    `json:"exitCode"`
	LogSHA256  string `json:"logSHA256,omitempty"`
}

// FileDigest is one side of an output comparison.
type FileDigest struct {
	SHA256 string `json:"sha256"`
	Size   int64  `json:"size"`
}

// OutputComparison compares one output file.
type OutputComparison struct {
	Path    string `json:"path"`
	Verdict string `json:"verdict"`
	// Required tells whether the output must match bit for bit (every
	// output does unless spec.reproduce.exact lists others).
	Required   bool        `json:"required"`
	Attested   *FileDigest `json:"attested,omitempty"`
	Reproduced *FileDigest `json:"reproduced,omitempty"`
	// FirstDifference is the offset of the first byte that differs, when
	// both files could be read and compared.
	FirstDifference *int64 `json:"firstDifference,omitempty"`
}

// MetricComparison compares one metric of metrics.json.
type MetricComparison struct {
	Name       string   `json:"name"`
	Verdict    string   `json:"verdict"`
	Attested   *float64 `json:"attested,omitempty"`
	Reproduced *float64 `json:"reproduced,omitempty"`
	// Tolerance is the declared tolerance, when one applied.
	Tolerance *MetricTolerance `json:"tolerance,omitempty"`
}

// MetricTolerance says how far a metric may move: |new - attested| must
// not exceed max(Abs, Rel * |attested|).
type MetricTolerance struct {
	Name string  `json:"name"`
	Abs  float64 `json:"abs,omitempty"`
	Rel  float64 `json:"rel,omitempty"`
}

// Tolerances are the rules a reproduction was judged by, declared in the
// experiment file before the run (spec.reproduce), and where they came from.
type Tolerances struct {
	// SpecPath and SpecBlob name the experiment file (by its Git blob ID)
	// whose spec.reproduce applied; Templates the templates merged into it.
	SpecPath  string     `json:"specPath"`
	SpecBlob  string     `json:"specBlob"`
	Templates []SpecFile `json:"templates,omitempty"`
	// Exact lists the outputs that must match bit for bit; empty: all.
	Exact   []string          `json:"exact,omitempty"`
	Metrics []MetricTolerance `json:"metrics,omitempty"`
	// Note says why the declared tolerances did not apply (the experiment
	// file could not be read): everything was then judged identical-only.
	Note string `json:"note,omitempty"`
}

// Materials are what a reproduction executed, rebuilt from the attestation.
type Materials struct {
	ContextPath string `json:"contextPath"`
	ContextTree string `json:"contextTree"`
	// Inputs name each input and where its bytes came from ("store",
	// "url", "repository").
	Inputs []MaterialInput `json:"inputs,omitempty"`
}

// MaterialInput is one input of a reproduction.
type MaterialInput struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
	From   string `json:"from"`
}

// SpecFile is a repository file named by its Git blob ID.
type SpecFile struct {
	Path string `json:"path"`
	Blob string `json:"blob"`
}

// ReproductionStatement is what a reproduction attests: the predicate, and
// the sha256 of the original run folder's envelope and run.json (its
// subjects).
type ReproductionStatement struct {
	Reproduction
	EnvelopeSHA256 string
	RunJSONSHA256  string
}

// reproductionJSON is the statement as JSON: the in-toto fields in their
// usual order.
type reproductionJSON struct {
	Type          string        `json:"_type"`
	Subject       []subjectJSON `json:"subject"`
	PredicateType string        `json:"predicateType"`
	Predicate     *Reproduction `json:"predicate"`
}

type subjectJSON struct {
	Name   string            `json:"name"`
	Digest map[string]string `json:"digest"`
}

// MarshalReproduction returns the statement as compact JSON (the DSSE
// payload), after checking it as verification will.
func MarshalReproduction(s ReproductionStatement) ([]byte, error) {
	st := reproductionJSON{
		Type: StatementType,
		Subject: []subjectJSON{
			{Name: EnvelopeFile, Digest: map[string]string{"sha256": s.EnvelopeSHA256}},
			{Name: RunFile, Digest: map[string]string{"sha256": s.RunJSONSHA256}},
		},
		PredicateType: ReproductionPredicateType,
		Predicate:     &s.Reproduction,
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(st); err != nil {
		return nil, fmt.Errorf("encode reproduction of run %s: %w", s.RunID, err)
	}
	payload := bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
	if _, err := ParseReproduction(payload); err != nil {
		return nil, fmt.Errorf("reproduction of run %s: %w", s.RunID, err)
	}
	return payload, nil
}

// SignReproduction builds and signs a reproduction statement; the result is
// the statement file's content (one line, newline included).
func SignReproduction(s ReproductionStatement, signers ...*Signer) ([]byte, error) {
	payload, err := MarshalReproduction(s)
	if err != nil {
		return nil, err
	}
	env, err := SignStatement(payload, signers...)
	if err != nil {
		return nil, err
	}
	return append(env, '\n'), nil
}

// VerifiedReproduction is a reproduction statement whose signature verified.
type VerifiedReproduction struct {
	ReproductionStatement
	// Keys are the trusted keys whose signatures verified.
	Keys    []*Key
	Payload []byte
}

// ErrReproduction is wrapped by every refusal of a reproduction statement's
// content (as opposed to its signature).
var ErrReproduction = errors.New("malformed reproduction statement")

// VerifyReproduction checks a reproduction envelope: the signatures first
// (VerifyDSSE), and only then the payload — an in-toto Statement v1 of
// predicate type ReproductionPredicateType naming a run folder's envelope
// and run.json — and that the reproducing builder is allowed for enough of
// the keys that signed.
func VerifyReproduction(envelope []byte, keys Verifiers, opts VerifyOptions) (*VerifiedReproduction, error) {
	d, err := VerifyDSSE(envelope, keys, opts)
	if err != nil {
		return nil, err
	}
	s, err := ParseReproduction(d.Payload)
	if err != nil {
		return nil, err
	}
	if err := checkBuilder(s.Reproduced.BuilderID, d.Keys, d.threshold, opts); err != nil {
		return nil, err
	}
	return &VerifiedReproduction{ReproductionStatement: *s, Keys: d.Keys, Payload: d.Payload}, nil
}

// ParseReproduction parses and checks a reproduction statement. Call it
// only on a payload whose signature verified (VerifyReproduction does): it
// trusts nothing but checks the shape fully, and refuses a payload that
// in-toto's own types reject, a key given twice at any level (readers that
// take the first and the last of them would see two statements), or any
// predicate type but ReproductionPredicateType.
func ParseReproduction(payload []byte) (*ReproductionStatement, error) {
	if !validJSON(payload) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrReproduction)
	}
	if err := checkNoDuplicateKeys(payload); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReproduction, err)
	}
	var st struct {
		Type          string          `json:"_type"`
		Subject       []subjectJSON   `json:"subject"`
		PredicateType string          `json:"predicateType"`
		Predicate     json.RawMessage `json:"predicate"`
	}
	if err := json.Unmarshal(payload, &st); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReproduction, err)
	}
	if st.Type != StatementType {
		return nil, fmt.Errorf("%w: _type %q, want %q", ErrReproduction, st.Type, StatementType)
	}
	if st.PredicateType != ReproductionPredicateType {
		return nil, fmt.Errorf("%w: predicate type %q, want %q", ErrPredicateType, st.PredicateType, ReproductionPredicateType)
	}
	// in-toto's own reading must accept it too (what cosign and the in-toto
	// tools check).
	var it intoto.Statement
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(payload, &it); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReproduction, err)
	}
	if err := it.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReproduction, err)
	}
	out := &ReproductionStatement{}
	if err := subjectsOfReproduction(st.Subject, out); err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(st.Predicate))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out.Reproduction); err != nil {
		return nil, fmt.Errorf("%w: predicate: %v", ErrReproduction, err)
	}
	if err := out.Reproduction.check(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrReproduction, err)
	}
	return out, nil
}

// subjectsOfReproduction reads the two subjects: the original envelope and
// run.json, each with a sha256 digest, and nothing else.
func subjectsOfReproduction(subjects []subjectJSON, out *ReproductionStatement) error {
	if len(subjects) != 2 {
		return fmt.Errorf("%w: %d subjects, want 2 (%s and %s of the run folder)", ErrReproduction, len(subjects), EnvelopeFile, RunFile)
	}
	for _, s := range subjects {
		sum := s.Digest["sha256"]
		if !isHex(sum, 64) {
			return fmt.Errorf("%w: subject %q: sha256 %q is not 64 lowercase hex digits", ErrReproduction, s.Name, sum)
		}
		switch {
		case s.Name == EnvelopeFile && out.EnvelopeSHA256 == "":
			out.EnvelopeSHA256 = sum
		case s.Name == RunFile && out.RunJSONSHA256 == "":
			out.RunJSONSHA256 = sum
		default:
			return fmt.Errorf("%w: subject %q: want %s and %s once each", ErrReproduction, s.Name, EnvelopeFile, RunFile)
		}
	}
	return nil
}

var (
	reproductionVerdicts = []string{VerdictIdentical, VerdictReproduced, VerdictDiffers}
	itemVerdicts         = []string{ItemIdentical, ItemWithinTolerance, ItemMayDiffer, ItemDiffers, ItemMissing, ItemUnexpected}
	materialSources      = []string{"store", "url", "repository"}
)

// check refuses a predicate that is not what expsync writes.
func (r *Reproduction) check() error {
	switch {
	case !isHex(r.RunID, 64):
		return fmt.Errorf("runID %q is not 64 lowercase hex digits", r.RunID)
	case r.Experiment == "" || len(r.Experiment) > 253:
		return fmt.Errorf("experiment %q: want a name", r.Experiment)
	case !oneOf(r.Verdict, reproductionVerdicts):
		return fmt.Errorf("verdict %q: want one of %s", r.Verdict, strings.Join(reproductionVerdicts, ", "))
	case !oneOf(r.Status, itemVerdicts):
		return fmt.Errorf("status verdict %q: want one of %s", r.Status, strings.Join(itemVerdicts, ", "))
	case r.Reproduced.BuilderID == "":
		return errors.New("reproduced.builderID is required")
	case r.Log != "" && !oneOf(r.Log, itemVerdicts):
		return fmt.Errorf("log verdict %q: want one of %s", r.Log, strings.Join(itemVerdicts, ", "))
	}
	for _, side := range []RunOutcome{r.Original, r.Reproduced} {
		for _, t := range []string{side.StartedOn, side.FinishedOn} {
			if _, err := time.Parse(time.RFC3339Nano, t); t != "" && err != nil {
				return fmt.Errorf("timestamp %q: %v", t, err)
			}
		}
		if side.LogSHA256 != "" && !isHex(side.LogSHA256, 64) {
			return fmt.Errorf("logSHA256 %q is not 64 lowercase hex digits", side.LogSHA256)
		}
	}
	seen := map[string]bool{}
	for _, o := range r.Outputs {
		if err := checkRelName("output", o.Path); err != nil {
			return err
		}
		if seen[o.Path] {
			return fmt.Errorf("output %q compared twice", o.Path)
		}
		seen[o.Path] = true
		if !oneOf(o.Verdict, itemVerdicts) {
			return fmt.Errorf("output %q: verdict %q", o.Path, o.Verdict)
		}
		for _, d := range []*FileDigest{o.Attested, o.Reproduced} {
			if d != nil && (!isHex(d.SHA256, 64) || d.Size < 0) {
				return fmt.Errorf("output %q: digest %q size %d", o.Path, d.SHA256, d.Size)
			}
		}
	}
	metrics := map[string]bool{}
	for _, m := range r.Metrics {
		if m.Name == "" || metrics[m.Name] {
			return fmt.Errorf("metric %q: empty or compared twice", m.Name)
		}
		metrics[m.Name] = true
		if !oneOf(m.Verdict, itemVerdicts) {
			return fmt.Errorf("metric %q: verdict %q", m.Name, m.Verdict)
		}
		if m.Tolerance != nil {
			if err := m.Tolerance.check(); err != nil {
				return err
			}
		}
	}
	for _, t := range r.Tolerances.Metrics {
		if err := t.check(); err != nil {
			return err
		}
	}
	for _, e := range r.Tolerances.Exact {
		if err := checkRelName("exact output", strings.TrimSuffix(e, "/")); err != nil {
			return err
		}
	}
	if r.Tolerances.SpecBlob != "" && !isHex(r.Tolerances.SpecBlob, 40) {
		return fmt.Errorf("tolerances.specBlob %q is not a Git blob ID", r.Tolerances.SpecBlob)
	}
	if r.Materials.ContextTree != "" && !isHex(r.Materials.ContextTree, 40) {
		return fmt.Errorf("materials.contextTree %q is not a Git tree ID", r.Materials.ContextTree)
	}
	for _, in := range r.Materials.Inputs {
		if !isHex(in.SHA256, 64) || !oneOf(in.From, materialSources) {
			return fmt.Errorf("materials input %q: sha256 %q from %q", in.Name, in.SHA256, in.From)
		}
	}
	return nil
}

func (t MetricTolerance) check() error {
	if t.Name == "" || t.Abs < 0 || t.Rel < 0 || math.IsInf(t.Abs, 0) || math.IsInf(t.Rel, 0) || math.IsNaN(t.Abs) || math.IsNaN(t.Rel) {
		return fmt.Errorf("tolerance of metric %q: abs %v, rel %v: want finite numbers >= 0", t.Name, t.Abs, t.Rel)
	}
	return nil
}

func checkRelName(what, p string) error {
	if p == "" || strings.HasPrefix(p, "/") || strings.ContainsAny(p, "\\\x00") || path.Clean(p) != p || p == ".." || strings.HasPrefix(p, "../") {
		return fmt.Errorf("%s %q: must be a clean relative slash path", what, p)
	}
	return nil
}

func oneOf(s string, allowed []string) bool {
	for _, a := range allowed {
		if s == a {
			return true
		}
	}
	return false
}

// checkNoDuplicateKeys walks a JSON document (already valid) and refuses an
// object that names a key twice.
func checkNoDuplicateKeys(data []byte) error {
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.UseNumber()
	type frame struct {
		object bool
		keys   map[string]bool
		key    bool // the next token is a key
	}
	var stack []*frame
	for {
		tok, err := dec.Token()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil
			}
			return err
		}
		var top *frame
		if len(stack) > 0 {
			top = stack[len(stack)-1]
		}
		if top != nil && top.object && top.key {
			if d, ok := tok.(json.Delim); ok && d == '}' {
				stack = stack[:len(stack)-1]
				if len(stack) > 0 {
					stack[len(stack)-1].key = stack[len(stack)-1].object
				}
				continue
			}
			k, _ := tok.(string)
			if top.keys[k] {
				return fmt.Errorf("key %q appears twice in one object", k)
			}
			top.keys[k] = true
			top.key = false
			continue
		}
		switch d := tok.(type) {
		case json.Delim:
			switch d {
			case '{':
				stack = append(stack, &frame{object: true, keys: map[string]bool{}, key: true})
				continue
			case '[':
				stack = append(stack, &frame{})
				continue
			case ']', '}':
				stack = stack[:len(stack)-1]
			}
		}
		// A value ended: the enclosing object expects a key next.
		if len(stack) > 0 && stack[len(stack)-1].object {
			stack[len(stack)-1].key = true
		}
	}
}
