package attest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"time"

	slsa "github.com/in-toto/attestation/go/predicates/provenance/v1"
	intoto "github.com/in-toto/attestation/go/v1"
	"google.golang.org/protobuf/encoding/protojson"
)

// Verified is what a verified envelope attests: the fields verification
// decides on, read straight from the signed payload. InToto gives the whole
// statement as the in-toto Go types.
type Verified struct {
	// Payload is the signed statement, exactly as signed.
	Payload []byte
	// Keys are the trusted keys whose signatures verified.
	Keys         []*Key
	BuildType    string
	BuilderID    string
	InvocationID string
	StartedOn    time.Time
	FinishedOn   time.Time
	Subjects     []Subject
	// Dependencies are the resolved dependencies, in statement order.
	Dependencies []Dependency
}

// Dependency is one resolved dependency of the provenance.
type Dependency struct {
	Name   string    `json:"name,omitempty"`
	URI    string    `json:"uri,omitempty"`
	Digest DigestSet `json:"digest"`
}

// DigestSet holds the digest algorithms verification compares; like the
// in-toto types, other algorithms are allowed and ignored. A struct rather
// than a map: decoding it allocates nothing per entry.
type DigestSet struct {
	SHA256    string `json:"sha256,omitempty"`
	SHA384    string `json:"sha384,omitempty"`
	SHA512    string `json:"sha512,omitempty"`
	SHA1      string `json:"sha1,omitempty"`
	GitBlob   string `json:"gitBlob,omitempty"`
	GitTree   string `json:"gitTree,omitempty"`
	GitCommit string `json:"gitCommit,omitempty"`
	GitTag    string `json:"gitTag,omitempty"`
}

// Get returns the digest for alg ("sha256", "gitTree", ...), or "".
func (d DigestSet) Get(alg string) string {
	for _, e := range d.entries() {
		if e.alg == alg {
			return e.value
		}
	}
	return ""
}

type digestEntry struct {
	alg, value string
	hexLen     int
}

func (d DigestSet) entries() [8]digestEntry {
	return [8]digestEntry{
		{"sha256", d.SHA256, 64}, {"sha384", d.SHA384, 96}, {"sha512", d.SHA512, 128}, {"sha1", d.SHA1, 40},
		{"gitBlob", d.GitBlob, 40}, {"gitTree", d.GitTree, 40}, {"gitCommit", d.GitCommit, 40}, {"gitTag", d.GitTag, 40},
	}
}

func (d DigestSet) empty() bool { return d == DigestSet{} }

// check refuses values that are not lowercase hex of the algorithm's length.
func (d DigestSet) check() error {
	for _, e := range d.entries() {
		if e.value != "" && !isHex(e.value, e.hexLen) {
			return fmt.Errorf("digest %s %q is not %d lowercase hex digits", e.alg, e.value, e.hexLen)
		}
	}
	return nil
}

// DependenciesWith returns the resolved dependencies whose digest uses alg
// ("gitCommit", "gitTree", "gitBlob", "sha256").
func (v *Verified) DependenciesWith(alg string) []Dependency {
	var out []Dependency
	for _, d := range v.Dependencies {
		if d.Digest.Get(alg) != "" {
			out = append(out, d)
		}
	}
	return out
}

// InToto parses the payload with the in-toto attestation Go types (protojson
// and the types' own Validate), for callers that want every field, such as
// the byproducts.
func (v *Verified) InToto() (*intoto.Statement, *slsa.Provenance, error) {
	st := &intoto.Statement{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(v.Payload, st); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if err := st.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	raw, err := protojson.Marshal(st.GetPredicate())
	if err != nil {
		return nil, nil, fmt.Errorf("%w: predicate: %v", ErrStatement, err)
	}
	prov := &slsa.Provenance{}
	if err := (protojson.UnmarshalOptions{DiscardUnknown: true}).Unmarshal(raw, prov); err != nil {
		return nil, nil, fmt.Errorf("%w: predicate is not SLSA provenance v1: %v", ErrStatement, err)
	}
	if err := prov.Validate(); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	return st, prov, nil
}

// The statement as JSON carries it, limited to what verification reads.
// encoding/json is used rather than protojson on this path: it is several
// times faster, which keeps verification within reach of raw signature
// checks (see BenchmarkVerifyVsRaw); FuzzParseStatement checks that it never
// accepts what the in-toto types reject.
type wireStatement struct {
	Type          string          `json:"_type"`
	Subject       []Dependency    `json:"subject"`
	PredicateType string          `json:"predicateType"`
	Predicate     *wireProvenance `json:"predicate"`
}

type wireProvenance struct {
	BuildDefinition *struct {
		BuildType            string          `json:"buildType"`
		ExternalParameters   json.RawMessage `json:"externalParameters"`
		ResolvedDependencies []Dependency    `json:"resolvedDependencies"`
	} `json:"buildDefinition"`
	RunDetails *struct {
		Builder *struct {
			ID string `json:"id"`
		} `json:"builder"`
		Metadata *struct {
			InvocationID string     `json:"invocationId"`
			StartedOn    *time.Time `json:"startedOn"`
			FinishedOn   *time.Time `json:"finishedOn"`
		} `json:"metadata"`
	} `json:"runDetails"`
}

// ParseStatement parses an in-toto Statement v1 carrying SLSA Provenance v1.
// Call it only on a payload whose signature has been verified (VerifyEnvelope
// does); it trusts nothing but checks the shape fully.
func ParseStatement(payload []byte) (*Verified, error) {
	var st wireStatement
	if err := json.Unmarshal(payload, &st); err != nil {
		var head struct {
			PredicateType string `json:"predicateType"`
		}
		if json.Unmarshal(payload, &head) == nil && head.PredicateType != PredicateType {
			return nil, fmt.Errorf("%w: %q, want %q", ErrPredicateType, head.PredicateType, PredicateType)
		}
		return nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if st.Type != StatementType {
		return nil, fmt.Errorf("%w: _type %q, want %q", ErrStatement, st.Type, StatementType)
	}
	if st.PredicateType != PredicateType {
		return nil, fmt.Errorf("%w: %q, want %q", ErrPredicateType, st.PredicateType, PredicateType)
	}
	p := st.Predicate
	switch {
	case p == nil:
		return nil, fmt.Errorf("%w: no predicate", ErrStatement)
	case p.BuildDefinition == nil || p.BuildDefinition.BuildType == "":
		return nil, fmt.Errorf("%w: buildDefinition.buildType is required", ErrStatement)
	case !isJSONObject(p.BuildDefinition.ExternalParameters):
		return nil, fmt.Errorf("%w: buildDefinition.externalParameters must be a non-empty object", ErrStatement)
	case p.RunDetails == nil || p.RunDetails.Builder == nil || p.RunDetails.Builder.ID == "":
		return nil, fmt.Errorf("%w: runDetails.builder.id is required", ErrStatement)
	case p.RunDetails.Metadata == nil || p.RunDetails.Metadata.InvocationID == "":
		return nil, fmt.Errorf("%w: runDetails.metadata.invocationId is required", ErrStatement)
	}
	v := &Verified{
		Payload:      payload,
		BuildType:    p.BuildDefinition.BuildType,
		BuilderID:    p.RunDetails.Builder.ID,
		InvocationID: p.RunDetails.Metadata.InvocationID,
		Dependencies: p.BuildDefinition.ResolvedDependencies,
	}
	if t := p.RunDetails.Metadata.StartedOn; t != nil {
		v.StartedOn = *t
	}
	if t := p.RunDetails.Metadata.FinishedOn; t != nil {
		v.FinishedOn = *t
	}
	if err := v.setSubjects(st.Subject); err != nil {
		return nil, err
	}
	for i, d := range v.Dependencies {
		if d.Name == "" && d.URI == "" && d.Digest.empty() {
			return nil, fmt.Errorf("%w: resolvedDependencies[%d] has no name, uri or digest", ErrStatement, i)
		}
		if err := d.Digest.check(); err != nil {
			return nil, fmt.Errorf("%w: resolvedDependencies[%d] (%s): %v", ErrStatement, i, d.Name, err)
		}
	}
	return v, nil
}

func (v *Verified) setSubjects(subjects []Dependency) error {
	if len(subjects) == 0 {
		return fmt.Errorf("%w: no subjects", ErrStatement)
	}
	seen := make(map[string]bool, len(subjects))
	v.Subjects = make([]Subject, 0, len(subjects))
	for i, s := range subjects {
		if err := s.Digest.check(); err != nil {
			return fmt.Errorf("%w: subject %d (%q): %v", ErrStatement, i, s.Name, err)
		}
		sum := s.Digest.SHA256
		if sum == "" {
			return fmt.Errorf("%w: subject %d (%q) has no sha256 digest", ErrStatement, i, s.Name)
		}
		if err := checkSubjectName(s.Name); err != nil {
			return fmt.Errorf("%w: %v", ErrStatement, err)
		}
		if seen[s.Name] {
			return fmt.Errorf("%w: subject %q listed twice", ErrStatement, s.Name)
		}
		seen[s.Name] = true
		v.Subjects = append(v.Subjects, Subject{Name: s.Name, SHA256: sum})
	}
	return nil
}

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 2 && raw[0] == '{' && !bytes.Equal(bytes.Join(bytes.Fields(raw), nil), []byte("{}"))
}
