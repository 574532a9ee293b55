package attest

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
)

func testStatement(t testing.TB) []byte {
	t.Helper()
	run := testRun(t, testIdentity(1))
	run.Subjects = testSubjects()
	raw, err := MarshalStatement(run)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func decodeEnvelope(t testing.TB, b []byte) Envelope {
	t.Helper()
	var e Envelope
	if err := json.Unmarshal(b, &e); err != nil {
		t.Fatal(err)
	}
	return e
}

func encodeTestEnvelope(t testing.TB, e Envelope) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// signRaw signs arbitrary payload bytes under payloadType with s, the way
// an attacker holding a trusted key (or a confused signer) could.
func signRaw(t testing.TB, s *Signer, payloadType string, payload []byte) EnvelopeSignature {
	t.Helper()
	sig, err := s.sv.SignMessage(bytes.NewReader(dsse.PAE(payloadType, payload)))
	if err != nil {
		t.Fatal(err)
	}
	return EnvelopeSignature{Sig: base64.StdEncoding.EncodeToString(sig)}
}

func TestVerifyEnvelopeAcceptsEveryKeyType(t *testing.T) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			s := testSigner(t, kt)
			env, err := s.Sign(testStatement(t))
			if err != nil {
				t.Fatal(err)
			}
			v, err := VerifyEnvelope(env, Verifiers{keyOf(t, s)}, VerifyOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if v.BuilderID != DefaultBuilderID || len(v.Subjects) != 4 || len(v.Keys) != 1 {
				t.Errorf("verified = builder %q, %d subjects, %d keys", v.BuilderID, len(v.Subjects), len(v.Keys))
			}
		})
	}
}

// TestOurEnvelopeVerifiesWithSigstore is a cross-check with sigstore's own
// DSSE verifier (a second implementation of the PAE and envelope rules).
func TestOurEnvelopeVerifiesWithSigstore(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	stmt := testStatement(t)
	env, err := s.Sign(stmt)
	if err != nil {
		t.Fatal(err)
	}
	sv, err := signature.LoadDefaultVerifier(s.Public())
	if err != nil {
		t.Fatal(err)
	}
	var payload []byte
	wrapped := sigdsse.WrapVerifier(sv, sigdsse.WithExpectedPayloadType(PayloadType), sigdsse.WithDecodedPayload(&payload))
	if err := wrapped.VerifySignature(bytes.NewReader(env), nil); err != nil {
		t.Fatalf("sigstore rejects our envelope: %v", err)
	}
	if !bytes.Equal(payload, stmt) {
		t.Error("sigstore decoded a different payload")
	}
	other := freshSigner(t, KeyECDSA)
	osv, _ := signature.LoadDefaultVerifier(other.Public())
	if err := sigdsse.WrapVerifier(osv).VerifySignature(bytes.NewReader(env), nil); err == nil {
		t.Error("sigstore accepted our envelope with another key")
	}
}

func TestVerifyAcceptsBothBase64Alphabets(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	// Find a statement whose payload and signature encode differently in the
	// two alphabets, so the test really exercises URL-safe decoding.
	for attempt := 0; attempt < 50; attempt++ {
		stmt := testStatement(t)
		// '?' (0x3f) in the third byte of a group encodes as '/' or '_'.
		stmt = append(stmt[:len(stmt)-1], []byte(`,"note":"`+strings.Repeat(" ", attempt)+`???~~~"}`)...)
		env := decodeEnvelope(t, mustSign(t, s, stmt))
		urlPayload := base64.URLEncoding.EncodeToString(mustB64(t, env.Payload))
		urlSig := base64.URLEncoding.EncodeToString(mustB64(t, env.Signatures[0].Sig))
		if urlPayload == env.Payload || urlSig == env.Signatures[0].Sig {
			continue
		}
		for name, e := range map[string]Envelope{
			"standard": env,
			"url-safe": {PayloadType: env.PayloadType, Payload: urlPayload, Signatures: []EnvelopeSignature{{Sig: urlSig}}},
			"url-safe unpadded": {PayloadType: env.PayloadType, Payload: strings.TrimRight(urlPayload, "="),
				Signatures: []EnvelopeSignature{{Sig: strings.TrimRight(urlSig, "=")}}},
		} {
			if _, err := VerifyEnvelope(encodeTestEnvelope(t, e), Verifiers{keyOf(t, s)}, VerifyOptions{}); err != nil {
				t.Errorf("%s base64: %v", name, err)
			}
		}
		return
	}
	t.Fatal("no statement found whose encodings differ between alphabets")
}

func mustSign(t testing.TB, s *Signer, stmt []byte) []byte {
	t.Helper()
	env, err := s.Sign(stmt)
	if err != nil {
		t.Fatal(err)
	}
	return env
}

func mustB64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func expectRejected(t *testing.T, env []byte, keys Verifiers, opts VerifyOptions, want error) {
	t.Helper()
	v, err := VerifyEnvelope(env, keys, opts)
	if err == nil {
		t.Fatalf("envelope accepted (builder %q), want %v", v.BuilderID, want)
	}
	if !errors.Is(err, want) {
		t.Fatalf("error = %v, want one wrapping %v", err, want)
	}
}

func TestRejectDifferentKey(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	other := freshSigner(t, KeyECDSA)
	expectRejected(t, mustSign(t, s, testStatement(t)), Verifiers{keyOf(t, other)}, VerifyOptions{}, ErrSignature)
}

func TestRejectDifferentKeyOfAnotherType(t *testing.T) {
	s := testSigner(t, KeyEd25519)
	expectRejected(t, mustSign(t, s, testStatement(t)), Verifiers{keyOf(t, testSigner(t, KeyRSA))}, VerifyOptions{}, ErrSignature)
}

func TestRejectWrongPayloadType(t *testing.T) {
	// A valid signature by the trusted key, over the statement but under
	// another payload type: the signature verifies (PAE covers the type),
	// the type check must reject.
	s := testSigner(t, KeyECDSA)
	stmt := testStatement(t)
	env := Envelope{PayloadType: "application/json", Payload: base64.StdEncoding.EncodeToString(stmt),
		Signatures: []EnvelopeSignature{signRaw(t, s, "application/json", stmt)}}
	expectRejected(t, encodeTestEnvelope(t, env), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrPayloadType)
}

func TestRejectPayloadTypeSwappedAfterSigning(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	env := decodeEnvelope(t, mustSign(t, s, testStatement(t)))
	env.PayloadType = "application/vnd.in-toto+json; swapped"
	expectRejected(t, encodeTestEnvelope(t, env), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrSignature)
}

func TestRejectSignatureOverDifferentPayload(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	env := decodeEnvelope(t, mustSign(t, s, testStatement(t)))
	other := decodeEnvelope(t, mustSign(t, s, []byte(`{"_type":"https://in-toto.io/Statement/v1"}`)))
	env.Signatures = other.Signatures
	expectRejected(t, encodeTestEnvelope(t, env), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrSignature)
}

func TestRejectPayloadEditedAfterSigning(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	env := decodeEnvelope(t, mustSign(t, s, testStatement(t)))
	payload := mustB64(t, env.Payload)
	payload = bytes.Replace(payload, []byte(DefaultBuilderID), []byte("https://evil.example/builder"), 1)
	env.Payload = base64.StdEncoding.EncodeToString(payload)
	expectRejected(t, encodeTestEnvelope(t, env), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrSignature)
}

func TestRejectNoSignatures(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	env := decodeEnvelope(t, mustSign(t, s, testStatement(t)))
	env.Signatures = nil
	expectRejected(t, encodeTestEnvelope(t, env), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrNoSignatures)
}

func TestRejectSameSignatureTwiceTowardThreshold(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	other := freshSigner(t, KeyECDSA)
	env := decodeEnvelope(t, mustSign(t, s, testStatement(t)))
	env.Signatures = append(env.Signatures, env.Signatures[0])
	keys := Verifiers{keyOf(t, s), keyOf(t, other)}
	expectRejected(t, encodeTestEnvelope(t, env), keys, VerifyOptions{Threshold: 2}, ErrSignature)

	// The same signature re-encoded in the other alphabet is still the same.
	urlSig := base64.URLEncoding.EncodeToString(mustB64(t, env.Signatures[0].Sig))
	env.Signatures[1] = EnvelopeSignature{KeyID: "another-hint", Sig: urlSig}
	expectRejected(t, encodeTestEnvelope(t, env), keys, VerifyOptions{Threshold: 2}, ErrSignature)
}

func TestRejectTwoSignaturesBySameKeyTowardThreshold(t *testing.T) {
	// ECDSA signs with fresh randomness: two different signature strings by
	// one key must still count as one key.
	s := testSigner(t, KeyECDSA)
	other := freshSigner(t, KeyECDSA)
	stmt := testStatement(t)
	env := decodeEnvelope(t, mustSign(t, s, stmt))
	env.Signatures = append(env.Signatures, decodeEnvelope(t, mustSign(t, s, stmt)).Signatures...)
	if env.Signatures[0].Sig == env.Signatures[1].Sig {
		t.Fatal("expected two distinct ECDSA signatures")
	}
	expectRejected(t, encodeTestEnvelope(t, env), Verifiers{keyOf(t, s), keyOf(t, other)}, VerifyOptions{Threshold: 2}, ErrSignature)
}

func TestKeyListedTwiceCountsOnce(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	env := mustSign(t, s, testStatement(t))
	_, err := VerifyEnvelope(env, Verifiers{keyOf(t, s), keyOf(t, s)}, VerifyOptions{Threshold: 2})
	if !errors.Is(err, ErrUsage) {
		t.Fatalf("threshold 2 with one key given twice: error = %v, want %v", err, ErrUsage)
	}
}

func TestThresholdTwoOfThree(t *testing.T) {
	a, b, c := testSigner(t, KeyECDSA), testSigner(t, KeyEd25519), testSigner(t, KeyRSA)
	keys := Verifiers{keyOf(t, a), keyOf(t, b), keyOf(t, c)}
	stmt := testStatement(t)
	both, err := SignStatement(stmt, a, c)
	if err != nil {
		t.Fatal(err)
	}
	v, err := VerifyEnvelope(both, keys, VerifyOptions{Threshold: 2})
	if err != nil {
		t.Fatalf("2 of 3 signed, threshold 2: %v", err)
	}
	var got []string
	for _, k := range v.Keys {
		got = append(got, k.ID)
	}
	if diff := cmp.Diff([]string{a.KeyID(), c.KeyID()}, got); diff != "" {
		t.Errorf("accepted keys (-want +got):\n%s", diff)
	}
	expectRejected(t, both, keys, VerifyOptions{Threshold: 3}, ErrSignature)
}

func TestRejectWrongPredicateType(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	stmt := bytes.Replace(testStatement(t), []byte(`"https://slsa.dev/provenance/v1"`), []byte(`"https://slsa.dev/provenance/v0.2"`), 1)
	expectRejected(t, mustSign(t, s, stmt), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrPredicateType)
}

func TestRejectWrongStatementType(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	stmt := bytes.Replace(testStatement(t), []byte(`"https://in-toto.io/Statement/v1"`), []byte(`"https://in-toto.io/Statement/v0.1"`), 1)
	expectRejected(t, mustSign(t, s, stmt), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrStatement)
}

func TestRejectSignedGarbagePayload(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	expectRejected(t, mustSign(t, s, []byte("not json")), Verifiers{keyOf(t, s)}, VerifyOptions{}, ErrStatement)
}

func TestRejectMalformedEnvelopes(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	good := mustSign(t, s, testStatement(t))
	tests := map[string][]byte{
		"empty":             nil,
		"truncated":         good[:len(good)/2],
		"truncated by one":  good[:len(good)-1],
		"not JSON":          []byte("DSSEv1 hello"),
		"JSON array":        []byte(`[]`),
		"two envelopes":     append(append(append([]byte(nil), good...), '\n'), good...),
		"no payload":        []byte(`{"payloadType":"application/vnd.in-toto+json","signatures":[{"sig":"AAAA"}]}`),
		"no payloadType":    []byte(`{"payload":"e30=","signatures":[{"sig":"AAAA"}]}`),
		"payload not b64":   []byte(`{"payloadType":"application/vnd.in-toto+json","payload":"!!!","signatures":[{"sig":"AAAA"}]}`),
		"signatures object": []byte(`{"payloadType":"x","payload":"e30=","signatures":{"sig":"AAAA"}}`),
	}
	for name, env := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := VerifyEnvelope(env, Verifiers{keyOf(t, s)}, VerifyOptions{})
			if err == nil {
				t.Fatal("malformed envelope accepted")
			}
			if !errors.Is(err, ErrMalformedEnvelope) && !errors.Is(err, ErrSignature) {
				t.Fatalf("error = %v, want malformed or signature failure", err)
			}
		})
	}
}

func TestRejectBuilderIDNotAllowed(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	env := mustSign(t, s, testStatement(t))
	t.Run("policy", func(t *testing.T) {
		expectRejected(t, env, Verifiers{keyOf(t, s)}, VerifyOptions{BuilderIDs: []string{"https://expsync.dev/builder/kubernetes/pod"}}, ErrBuilderID)
	})
	t.Run("key bound to another builder", func(t *testing.T) {
		expectRejected(t, env, Verifiers{keyOf(t, s, "https://expsync.dev/builder/kubernetes/pod")}, VerifyOptions{}, ErrBuilderID)
	})
	t.Run("key bound to this builder", func(t *testing.T) {
		if _, err := VerifyEnvelope(env, Verifiers{keyOf(t, s, DefaultBuilderID)}, VerifyOptions{BuilderIDs: []string{DefaultBuilderID}}); err != nil {
			t.Fatal(err)
		}
	})
}

// TestSignatureCheckedBeforePayloadParsed: an envelope signed by an
// untrusted key whose payload is garbage must fail on the signature, which
// shows the payload was never parsed first.
func TestSignatureCheckedBeforePayloadParsed(t *testing.T) {
	untrusted := freshSigner(t, KeyECDSA)
	env := mustSign(t, untrusted, []byte("{not a statement"))
	expectRejected(t, env, Verifiers{keyOf(t, testSigner(t, KeyECDSA))}, VerifyOptions{}, ErrSignature)
}

func TestParseStatementIsStrictAboutKeys(t *testing.T) {
	good := string(testStatement(t))
	if _, err := ParseStatement([]byte(good)); err != nil {
		t.Fatal(err)
	}
	tests := map[string]struct {
		stmt string
		want string
	}{
		"case variant":   {strings.Replace(good, `"predicateType"`, `"PredicateType"`, 1), "only in case"},
		"protobuf name":  {strings.Replace(good, `"invocationId"`, `"invocation_id"`, 1), "protobuf field name"},
		"duplicate key":  {strings.Replace(good, `{"_type":`, `{"_type":"x","_type":`, 1), "given twice"},
		"escaped key":    {strings.Replace(good, `"subject"`, `"\u0073ubject"`, 1), "written with escapes"},
		"not JSON":       {good[:len(good)-1], "not valid JSON"},
		"subject string": {strings.Replace(good, `"subject":[`, `"subject":"x","s":[`, 1), "want an array"},
		"no builder":     {strings.Replace(good, `"builder":`, `"b":`, 1), "builder.id is required"},
		"empty params":   {strings.Replace(good, `"externalParameters":{`, `"externalParameters":{},"x":{`, 1), "externalParameters must be a non-empty object"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := ParseStatement([]byte(tt.stmt))
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
	// White space anywhere (json.Indent) and escapes in values are fine, and
	// read the same as the compact form.
	var indented bytes.Buffer
	if err := json.Indent(&indented, []byte(good), " ", "\t"); err != nil {
		t.Fatal(err)
	}
	compactV, _ := ParseStatement([]byte(good))
	indentedV, err := ParseStatement(indented.Bytes())
	if err != nil {
		t.Fatalf("indented statement: %v", err)
	}
	compactV.Payload, indentedV.Payload = nil, nil
	if diff := cmp.Diff(compactV, indentedV); diff != "" {
		t.Errorf("indented statement reads differently (-compact +indented):\n%s", diff)
	}
	spaced := strings.ReplaceAll(good, `,"`, ",\n  \"")
	spaced = strings.Replace(spaced, `"pi-montecarlo"`, `"pi-monte\u0063arlo"`, 1)
	if _, err := ParseStatement([]byte(spaced)); err != nil {
		t.Errorf("indented statement: %v", err)
	}
}

// TestEd25519phSignatureAccepted: cosign signs with Ed25519ph for Ed25519
// keys; such an envelope verifies with the same public key.
func TestEd25519phSignatureAccepted(t *testing.T) {
	s := testSigner(t, KeyEd25519)
	ph, err := signature.LoadED25519phSignerVerifier(testKeys[KeyEd25519].(ed25519.PrivateKey))
	if err != nil {
		t.Fatal(err)
	}
	stmt := testStatement(t)
	sig, err := ph.SignMessage(bytes.NewReader(dsse.PAE(PayloadType, stmt)))
	if err != nil {
		t.Fatal(err)
	}
	env := encodeEnvelope(PayloadType, stmt, [][]byte{sig})
	if _, err := VerifyEnvelope(env, Verifiers{keyOf(t, s)}, VerifyOptions{}); err != nil {
		t.Fatalf("Ed25519ph envelope: %v", err)
	}
	expectRejected(t, env, Verifiers{keyOf(t, freshSigner(t, KeyEd25519))}, VerifyOptions{}, ErrSignature)
}

// TestSpecialIndexMatchesByteLoop checks the eight-bytes-at-a-time search
// against the obvious loop for every byte value at every offset.
func TestSpecialIndexMatchesByteLoop(t *testing.T) {
	naive := func(b []byte) int {
		for i, c := range b {
			if c == '"' || c == '\\' || c < 0x20 {
				return i
			}
		}
		return len(b)
	}
	for n := 0; n <= 19; n++ {
		for pos := 0; pos < n; pos++ {
			for c := 0; c < 256; c++ {
				b := bytes.Repeat([]byte{'a'}, n)
				b[pos] = byte(c)
				if pos > 0 {
					b[pos-1] = 0xff // high bytes must not hide or fake a match
				}
				if got, want := specialIndex(b), naive(b); got != want {
					t.Fatalf("specialIndex(%q) = %d, want %d", b, got, want)
				}
			}
		}
	}
}
