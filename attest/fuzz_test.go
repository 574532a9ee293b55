package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"sync"
	"testing"
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
	f.Fuzz(func(t *testing.T, data []byte) {
		v, err := ParseStatement(data)
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
