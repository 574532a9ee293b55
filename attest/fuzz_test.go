package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"reflect"
	"sync"
	"testing"
	"time"
)

// fuzzFixture is one key and one statement signed by it: nothing else is
// ever signed by that key, so an envelope the verifier accepts must carry
// exactly that statement.
var fuzzFixture = sync.OnceValues(func() (*Signer, []byte) {
	priv, err := GenerateKey(KeyECDSA)
	if err != nil {
		panic(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		panic(err)
	}
	run := Run{RunID: "run-1", Experiment: "e", Repository: "https://git.example/r.git", Ref: "refs/heads/main",
		ContextTree: testContextTree, SpecPath: "e.yaml", SpecBlob: testSpecBlob, Status: "Succeeded",
		Subjects: []Subject{{Name: RunFile, SHA256: testImageDigest}}}
	stmt, err := MarshalStatement(run)
	if err != nil {
		panic(err)
	}
	return s, stmt
})

func FuzzVerifyEnvelope(f *testing.F) {
	s, stmt := fuzzFixture()
	env, err := s.Sign(stmt)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(env)
	var e Envelope
	_ = json.Unmarshal(env, &e)
	sig := e.Signatures[0].Sig
	url := Envelope{PayloadType: e.PayloadType, Payload: base64.URLEncoding.EncodeToString(stmt),
		Signatures: []EnvelopeSignature{{KeyID: "k", Sig: sig}, {Sig: sig}}}
	b, _ := json.Marshal(url)
	f.Add(b)
	f.Add(append(append([]byte(nil), env...), '\n'))
	f.Add([]byte(`{"payloadType":"application/vnd.in-toto+json","payload":"e30=","signatures":[]}`))
	key, err := NewKey("fuzz", s.Public())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := VerifyEnvelope(data, Verifiers{key}, VerifyOptions{})
		if err != nil {
			return
		}
		if !bytes.Equal(v.Payload, stmt) {
			t.Fatalf("accepted a payload the key never signed: %q", v.Payload)
		}
		if v.InvocationID != "run-1" || len(v.Keys) != 1 {
			t.Fatalf("accepted envelope gives invocation %q and %d keys", v.InvocationID, len(v.Keys))
		}
	})
}

// FuzzParseEnvelope checks the compact fast path against encoding/json:
// whatever the fast path accepts, encoding/json reads identically.
func FuzzParseEnvelope(f *testing.F) {
	s, stmt := fuzzFixture()
	env, _ := s.Sign(stmt)
	f.Add(env)
	f.Add([]byte(`{"payloadType":"t","payload":"cA==","signatures":[{"keyid":"a","sig":"c2ln"},{"sig":"eA=="}]}`))
	f.Add([]byte(`{"payloadType":"t","payload":"cA==","signatures":[]}` + "\n"))
	f.Add([]byte(`{"payloadType":"t\u0041","payload":"cA==","signatures":[{"sig":"c2ln"}]}`))
	f.Add([]byte(`{"payloadType":"t","payload":"cA==","signatures":[{"sig":"c2ln"}],"x":1}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		fast, ok := parseCompactEnvelope(data)
		var slow Envelope
		slowErr := json.Unmarshal(data, &slow)
		if ok {
			if slowErr != nil {
				t.Fatalf("fast path accepted what encoding/json rejects (%v): %q", slowErr, data)
			}
			if !reflect.DeepEqual(*fast, slow) {
				t.Fatalf("fast path read %+v, encoding/json %+v", *fast, slow)
			}
		}
		if env, err := ParseEnvelope(data); err == nil {
			if env.PayloadType == "" || env.Payload == "" || len(env.Signatures) > MaxSignatures {
				t.Fatalf("ParseEnvelope accepted an envelope breaking its own rules: %+v", env)
			}
		}
	})
}

// FuzzParseStatement: no input panics, and an accepted statement always has
// what verification relies on.
func FuzzParseStatement(f *testing.F) {
	_, stmt := fuzzFixture()
	f.Add(stmt)
	run := testRun(f, testIdentity(1))
	run.Subjects = testSubjects()
	full, _ := MarshalStatement(run)
	f.Add(full)
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://slsa.dev/provenance/v1","subject":[],"predicate":{}}`))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","subject":[{"name":"../x","digest":{"sha256":"` + testImageDigest + `"}}]}`))
	f.Add([]byte(" {\n \"_type\" : \"https:\\/\\/in-toto.io\\/Statement\\/v1\" } "))
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseStatement(data)
		ref, refErr := parseStatementReference(data)
		// White space never changes the reading.
		var compact bytes.Buffer
		if json.Compact(&compact, data) == nil {
			cv, cerr := ParseStatement(compact.Bytes())
			if (err == nil) != (cerr == nil) {
				t.Fatalf("compacting changed the verdict: %v vs %v", err, cerr)
			}
			if err == nil {
				cv.Payload = v.Payload
				if diff := cmp.Diff(v, cv, cmpopts.EquateEmpty()); diff != "" {
					t.Fatalf("compacting changed the reading:\n%s", diff)
				}
			}
		}
		if err == nil && refErr == nil {
			v.Payload, ref.Payload = nil, nil
			if diff := cmp.Diff(ref, v, cmpopts.EquateEmpty()); diff != "" {
				t.Fatalf("scanner and encoding/json read differently (-json +scanner):\n%s", diff)
			}
		}
		if err != nil {
			return
		}
		if v.InvocationID == "" || v.BuilderID == "" || len(v.Subjects) == 0 {
			t.Fatalf("accepted statement lacks invocation, builder or subjects: %+v", v)
		}
		seen := map[string]bool{}
		for _, s := range v.Subjects {
			if checkSubjectName(s.Name) != nil || !isHex(s.SHA256, 64) || seen[s.Name] {
				t.Fatalf("accepted bad subject %+v", s)
			}
			seen[s.Name] = true
		}
	})
}

// The reference reading of a statement: the same fields with encoding/json,
// against which FuzzParseStatement checks jsonScanner.
type refStatement struct {
	Type          string         `json:"_type"`
	Subject       []Dependency   `json:"subject"`
	PredicateType string         `json:"predicateType"`
	Predicate     *refProvenance `json:"predicate"`
}

type refProvenance struct {
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

func parseStatementReference(payload []byte) (*Verified, error) {
	var st refStatement
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

func isJSONObject(raw json.RawMessage) bool {
	raw = bytes.TrimSpace(raw)
	return len(raw) > 2 && raw[0] == '{' && !bytes.Equal(bytes.Join(bytes.Fields(raw), nil), []byte("{}"))
}

// FuzzValidJSON holds the fast validator that guards jsonScanner to
// json.Valid's answer on every input.
func FuzzValidJSON(f *testing.F) {
	_, stmt := fuzzFixture()
	for _, seed := range []string{string(stmt), `{}`, `[]`, `""`, `-0.5e+3`, `01`, `1.`, `"\u00e9\ud800"`, `{"a":[1,true,null,{"b":"\n"}]}`,
		` {"a" : 1 , "b":[ ]} `, `{"a":1,}`, `[1 2]`, `"\x"`, "\"\x01\"", `tru`, `{"a"}`, `-`, `1e`, `[[[[`} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if got, want := validJSON(data), json.Valid(data); got != want {
			t.Fatalf("validJSON(%q) = %v, json.Valid says %v", data, got, want)
		}
	})
}
