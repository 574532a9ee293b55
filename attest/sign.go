package attest

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"encoding/base64"
	"fmt"
	"strconv"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
)

// PayloadType is the DSSE payload type of in-toto statements.
const PayloadType = "application/vnd.in-toto+json"

// Signer signs statements into DSSE envelopes with one key.
type Signer struct {
	sv  signature.Signer
	pub crypto.PublicKey
	id  string
}

// NewSigner wraps a private key: ECDSA with SHA-256 (P-256; SHA-384/512 for
// P-384/521), pure Ed25519, or RSA PKCS #1 v1.5 with SHA-256 — sigstore's
// default algorithm for each key type.
func NewSigner(key crypto.Signer) (*Signer, error) {
	key, err := checkSigner(key)
	if err != nil {
		return nil, err
	}
	var sv signature.SignerVerifier
	if edKey, ok := key.(ed25519.PrivateKey); ok {
		// Pure Ed25519, as the DSSE and in-toto reference implementations sign.
		sv, err = signature.LoadED25519SignerVerifier(edKey)
	} else {
		sv, err = signature.LoadDefaultSignerVerifier(key)
	}
	if err != nil {
		return nil, fmt.Errorf("load signer: %w", err)
	}
	return NewSignerFromSigstore(sv)
}

// NewSignerFromSigstore wraps any sigstore signer (a KMS key, for example).
func NewSignerFromSigstore(sv signature.Signer) (*Signer, error) {
	pub, err := sv.PublicKey()
	if err != nil {
		return nil, fmt.Errorf("signer public key: %w", err)
	}
	return &Signer{sv: sv, pub: pub, id: KeyID(pub)}, nil
}

// Public returns the signer's public key.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// KeyID returns the public key's printable ID (see KeyID).
func (s *Signer) KeyID() string { return s.id }

// Sign wraps statement (JSON) in a DSSE envelope signed by s, returning the
// envelope as compact JSON without a trailing newline.
func (s *Signer) Sign(statement []byte) ([]byte, error) {
	return SignStatement(statement, s)
}

// SignRun builds the run's statement and signs it; the result is one line of
// provenance.intoto.jsonl (newline included).
func (s *Signer) SignRun(run Run) ([]byte, error) {
	return SignRun(run, s)
}

// SignRun builds the run's statement and signs it with every signer (one
// envelope, one signature per key, for t-of-n policies). The result is one
// line of provenance.intoto.jsonl, newline included.
func SignRun(run Run, signers ...*Signer) ([]byte, error) {
	statement, err := MarshalStatement(run)
	if err != nil {
		return nil, err
	}
	env, err := SignStatement(statement, signers...)
	if err != nil {
		return nil, err
	}
	return append(env, '\n'), nil
}

// SignStatement wraps statement in one DSSE envelope carrying a signature by
// each signer: each signs the DSSE pre-authentication encoding (PAE) of the
// payload type and statement through its sigstore signer. The envelope is
// written directly rather than with dsse.WrapSigner/WrapMultiSigner, which
// read the payload twice and re-encode it with encoding/json: the same bytes
// out (TestOurEnvelopeVerifiesWithSigstore checks it against sigstore's
// verifier), at a cost that keeps signing near raw-crypto speed
// (BenchmarkSignVsRaw).
func SignStatement(statement []byte, signers ...*Signer) ([]byte, error) {
	if len(signers) == 0 {
		return nil, fmt.Errorf("sign statement: no signing key")
	}
	pae := dsse.PAE(PayloadType, statement)
	sigs := make([][]byte, len(signers))
	for i, s := range signers {
		sig, err := s.sv.SignMessage(bytes.NewReader(pae))
		if err != nil {
			return nil, fmt.Errorf("sign statement with %s: %w", s.id, err)
		}
		sigs[i] = sig
	}
	return encodeEnvelope(PayloadType, statement, sigs), nil
}

// encodeEnvelope writes {"payloadType":…,"payload":…,"signatures":[{"sig":…}]}
// with standard base64, as the DSSE reference implementations do. Base64
// text and the constant payload type need no JSON escaping.
func encodeEnvelope(payloadType string, payload []byte, sigs [][]byte) []byte {
	enc := base64.StdEncoding
	n := 64 + len(payloadType) + enc.EncodedLen(len(payload))
	for _, sig := range sigs {
		n += 16 + enc.EncodedLen(len(sig))
	}
	out := make([]byte, 0, n)
	out = append(out, `{"payloadType":`...)
	out = strconv.AppendQuote(out, payloadType)
	out = append(out, `,"payload":"`...)
	out = enc.AppendEncode(out, payload)
	out = append(out, `","signatures":[`...)
	for i, sig := range sigs {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"sig":"`...)
		out = enc.AppendEncode(out, sig)
		out = append(out, `"}`...)
	}
	return append(out, "]}"...)
}
