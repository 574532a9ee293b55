package attest

import (
	"errors"
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

// ParseStatement parses an in-toto Statement v1 carrying SLSA Provenance v1.
// Call it only on a payload whose signature has been verified (VerifyEnvelope
// does); it trusts nothing but checks the shape fully. It reads only what
// verification needs, with jsonScanner; InToto gives the rest.
func ParseStatement(payload []byte) (*Verified, error) {
	if !validJSON(payload) {
		return nil, fmt.Errorf("%w: not valid JSON", ErrStatement)
	}
	v := &Verified{Payload: payload}
	var stType, predType string
	var subjects []Dependency
	var predicate []byte
	s := &jsonScanner{data: payload}
	o := objectState{name: "statement", known: []string{"_type", "subject", "predicateType", "predicate"}, aliases: []string{"type", "predicate_type"}}
	err := s.fields(&o, func(key string) (err error) {
		switch key {
		case "_type":
			stType, err = s.str("_type")
		case "predicateType":
			predType, err = s.str("predicateType")
		case "subject":
			subjects, err = s.descriptors("subject")
		case "predicate":
			start := s.pos
			s.skip()
			predicate = payload[start:s.pos]
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if stType != StatementType {
		return nil, fmt.Errorf("%w: _type %q, want %q", ErrStatement, stType, StatementType)
	}
	if predType != PredicateType {
		return nil, fmt.Errorf("%w: %q, want %q", ErrPredicateType, predType, PredicateType)
	}
	if predicate == nil {
		return nil, fmt.Errorf("%w: no predicate", ErrStatement)
	}
	if err := v.readProvenance(&jsonScanner{data: predicate}); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStatement, err)
	}
	if err := v.setSubjects(subjects); err != nil {
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

// The objects of the provenance predicate that verification reads.
var (
	predicateKeys  = []string{"buildDefinition", "runDetails"}
	predicateAlias = []string{"build_definition", "run_details"}
	definitionKeys = []string{"buildType", "externalParameters", "resolvedDependencies"}
	definitionAlia = []string{"build_type", "external_parameters", "resolved_dependencies"}
	detailsKeys    = []string{"builder", "metadata"}
	builderKeys    = []string{"id"}
	metadataKeys   = []string{"invocationId", "startedOn", "finishedOn"}
	metadataAlias  = []string{"invocation_id", "started_on", "finished_on"}
	descriptorKeys = []string{"name", "uri", "digest"}
	descriptorAlia = []string{"download_location", "media_type"}
)

func (v *Verified) readProvenance(s *jsonScanner) error {
	var hasDefinition, hasDetails, hasExternal, hasBuilder, hasMetadata bool
	pred := objectState{name: "predicate", known: predicateKeys, aliases: predicateAlias}
	err := s.fields(&pred, func(key string) (err error) {
		switch key {
		case "buildDefinition":
			hasDefinition = s.peek() == '{'
			hasExternal, err = v.readDefinition(s)
		case "runDetails":
			hasDetails = s.peek() == '{'
			hasBuilder, hasMetadata, err = v.readDetails(s)
		}
		return err
	})
	switch {
	case err != nil:
		return err
	case !hasDefinition || v.BuildType == "":
		return errors.New("buildDefinition.buildType is required")
	case !hasExternal:
		return errors.New("buildDefinition.externalParameters must be a non-empty object")
	case !hasDetails || !hasBuilder || v.BuilderID == "":
		return errors.New("runDetails.builder.id is required")
	case !hasMetadata || v.InvocationID == "":
		return errors.New("runDetails.metadata.invocationId is required")
	}
	return nil
}

func (v *Verified) readDefinition(s *jsonScanner) (hasExternal bool, err error) {
	o := objectState{name: "buildDefinition", known: definitionKeys, aliases: definitionAlia}
	err = s.fields(&o, func(key string) (err error) {
		switch key {
		case "buildType":
			v.BuildType, err = s.str("buildType")
		case "externalParameters":
			hasExternal = s.nonEmptyObject()
		case "resolvedDependencies":
			v.Dependencies, err = s.descriptors("resolvedDependencies")
		}
		return err
	})
	return hasExternal, err
}

func (v *Verified) readDetails(s *jsonScanner) (hasBuilder, hasMetadata bool, err error) {
	o := objectState{name: "runDetails", known: detailsKeys}
	err = s.fields(&o, func(key string) error {
		switch key {
		case "builder":
			hasBuilder = s.peek() == '{'
			b := objectState{name: "builder", known: builderKeys}
			return s.fields(&b, func(string) (err error) {
				v.BuilderID, err = s.str("builder.id")
				return err
			})
		case "metadata":
			hasMetadata = s.peek() == '{'
			return v.readMetadata(s)
		}
		return nil
	})
	return hasBuilder, hasMetadata, err
}

func (v *Verified) readMetadata(s *jsonScanner) error {
	o := objectState{name: "metadata", known: metadataKeys, aliases: metadataAlias}
	return s.fields(&o, func(key string) (err error) {
		switch key {
		case "invocationId":
			v.InvocationID, err = s.str("invocationId")
		case "startedOn":
			v.StartedOn, err = s.timestamp("startedOn")
		case "finishedOn":
			v.FinishedOn, err = s.timestamp("finishedOn")
		}
		return err
	})
}

// descriptors reads an array of resource descriptors (name, uri, digest).
func (s *jsonScanner) descriptors(field string) ([]Dependency, error) {
	more, err := s.enterArray(field)
	if err != nil || !more {
		return nil, err
	}
	var out []Dependency
	for s.nextItem() {
		var d Dependency
		o := objectState{name: field, known: descriptorKeys, aliases: descriptorAlia}
		err := s.fields(&o, func(key string) (err error) {
			switch key {
			case "name":
				d.Name, err = s.str("name")
			case "uri":
				d.URI, err = s.str("uri")
			case "digest":
				err = s.digestSet(&d.Digest)
			}
			return err
		})
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

var digestAlgorithms = []string{"sha256", "sha384", "sha512", "sha1", "gitBlob", "gitTree", "gitCommit", "gitTag"}

// digestSet reads a digest object; algorithms other than the known ones are
// skipped.
func (s *jsonScanner) digestSet(d *DigestSet) error {
	o := objectState{name: "digest", known: digestAlgorithms}
	return s.fields(&o, func(alg string) error {
		value, err := s.str("digest")
		switch alg {
		case "sha256":
			d.SHA256 = value
		case "sha384":
			d.SHA384 = value
		case "sha512":
			d.SHA512 = value
		case "sha1":
			d.SHA1 = value
		case "gitBlob":
			d.GitBlob = value
		case "gitTree":
			d.GitTree = value
		case "gitCommit":
			d.GitCommit = value
		case "gitTag":
			d.GitTag = value
		}
		return err
	})
}

// timestamp reads an RFC 3339 string exactly as time.Time's JSON decoding
// does.
func (s *jsonScanner) timestamp(field string) (time.Time, error) {
	s.peek()
	start := s.pos
	if _, err := s.str(field); err != nil {
		return time.Time{}, err
	}
	var t time.Time
	if err := t.UnmarshalJSON(s.data[start:s.pos]); err != nil {
		return time.Time{}, fmt.Errorf("%s: %v", field, err)
	}
	return t, nil
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
