package reproduce

import (
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// Tolerances are the rules a reproduction is judged by.
type Tolerances struct {
	// Exact are the outputs that must be bit for bit identical (files, or
	// folders ending in "/"); nil: every output.
	Exact []string
	// Metrics are the tolerances by metric name; a metric without one must
	// be equal.
	Metrics map[string]attest.MetricTolerance
	// Source says where they came from, as the statement records it.
	Source attest.Tolerances
}

// maxSpecBytes bounds an experiment file or template read from Git (the
// loader's own limit is 1 MiB).
const maxSpecBytes = 4 << 20

// ReadTolerances reads spec.reproduce of the run's experiment from the
// experiment file and templates its attestation names — by blob ID, at the
// paths they had — never from the files as they are now: tolerances are
// declared before a run, not chosen after seeing a reproduction.
func ReadTolerances(objs *Objects, m *Material) (Tolerances, error) {
	rec := m.Record
	t := Tolerances{Source: attest.Tolerances{SpecPath: rec.SpecPath, SpecBlob: rec.SpecBlob}}
	for _, tpl := range rec.Templates {
		t.Source.Templates = append(t.Source.Templates, attest.SpecFile{Path: tpl.Path, Blob: tpl.Blob})
	}
	if err := checkAttestedSpec(m); err != nil {
		return t, err
	}
	files := tree.NewMemory()
	add := func(path, blob string) error {
		data, err := objs.Blob(blob, maxSpecBytes)
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		return files.Write(path, data, tree.ModeFile)
	}
	if err := add(rec.SpecPath, rec.SpecBlob); err != nil {
		return t, err
	}
	for _, tpl := range rec.Templates {
		if err := add(tpl.Path, tpl.Blob); err != nil {
			return t, err
		}
	}
	loaded, err := v1alpha1.LoadExperimentFile(files, rec.SpecPath, v1alpha1.LoadOptions{})
	var problems v1alpha1.ErrorList
	if err != nil && !errors.As(err, &problems) {
		return t, err
	}
	for _, e := range loaded {
		if e.Metadata.Name != rec.Experiment {
			continue
		}
		if !e.Valid() {
			return t, fmt.Errorf("%s@%s does not load with this expsync: %v", rec.SpecPath, contract.ShortID(rec.SpecBlob), err)
		}
		t.set(e.Spec.Reproduce)
		return t, nil
	}
	return t, fmt.Errorf("%s@%s holds no experiment %q", rec.SpecPath, contract.ShortID(rec.SpecBlob), rec.Experiment)
}

// checkAttestedSpec checks that the experiment file and templates run.json
// names are the ones the signed statement depends on.
func checkAttestedSpec(m *Material) error {
	blobs := map[string]string{}
	for _, d := range m.Verified.DependenciesWith("gitBlob") {
		blobs[d.Name] = d.Digest.Get("gitBlob")
	}
	rec := m.Record
	if blobs[rec.SpecPath] != rec.SpecBlob || rec.SpecBlob == "" {
		return fmt.Errorf("run.json names experiment file %s@%s, which the statement does not attest", rec.SpecPath, rec.SpecBlob)
	}
	for _, tpl := range rec.Templates {
		if blobs[tpl.Path] != tpl.Blob {
			return fmt.Errorf("run.json names template %s@%s, which the statement does not attest", tpl.Path, tpl.Blob)
		}
	}
	return nil
}

func (t *Tolerances) set(r *v1alpha1.Reproduce) {
	if r == nil {
		return
	}
	if r.Exact != nil {
		t.Exact = append([]string{}, r.Exact...)
		sort.Strings(t.Exact)
		t.Source.Exact = t.Exact
	}
	t.Metrics = map[string]attest.MetricTolerance{}
	for _, m := range r.Metrics {
		mt := attest.MetricTolerance{Name: m.Name, Abs: m.Abs, Rel: m.Rel}
		t.Metrics[m.Name] = mt
		t.Source.Metrics = append(t.Source.Metrics, mt)
	}
	sort.Slice(t.Source.Metrics, func(i, j int) bool { return t.Source.Metrics[i].Name < t.Source.Metrics[j].Name })
}

// Strict are the tolerances when the attested experiment file cannot be
// read: everything must be identical. They can only make a verdict harsher.
func Strict(m *Material, why error) Tolerances {
	t := Tolerances{Source: attest.Tolerances{SpecPath: m.Record.SpecPath, SpecBlob: m.Record.SpecBlob}}
	if why != nil {
		t.Source.Note = "spec.reproduce could not be read (" + why.Error() + "): everything must be identical"
	}
	return t
}

// required tells whether output p must be identical.
func (t Tolerances) required(p string) bool {
	if t.Exact == nil {
		return true
	}
	for _, e := range t.Exact {
		if p == e || (strings.HasSuffix(e, "/") && strings.HasPrefix(p, e)) {
			return true
		}
	}
	return false
}

// listed tells whether output p is named by spec.reproduce.exact itself.
func (t Tolerances) listed(p string) bool { return t.Exact != nil && t.required(p) }

// within tells whether a metric's reproduced value is within its
// tolerance of the attested one: |got - want| <= max(abs, rel*|want|).
func within(tol attest.MetricTolerance, want, got float64) bool {
	return math.Abs(got-want) <= math.Max(tol.Abs, tol.Rel*math.Abs(want))
}
