package attest

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"fmt"

	"github.com/sigstore/sigstore/pkg/signature"
	sigdsse "github.com/sigstore/sigstore/pkg/signature/dsse"
)

// PayloadType is the DSSE payload type of in-toto statements.
const PayloadType = "application/vnd.in-toto+json"

// Signer signs statements into DSSE envelopes with one key.
type Signer struct {
	sv   signature.Signer
	dsse signature.Signer
	pub  crypto.PublicKey
	id   string
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
	return &Signer{sv: sv, dsse: sigdsse.WrapSigner(sv, PayloadType), pub: pub, id: KeyID(pub)}, nil
}

// Public returns the signer's public key.
func (s *Signer) Public() crypto.PublicKey { return s.pub }

// KeyID returns the public key's printable ID (see KeyID).
func (s *Signer) KeyID() string { return s.id }

// Sign wraps statement (JSON) in a DSSE envelope signed by s, returning the
// envelope as compact JSON without a trailing newline.
func (s *Signer) Sign(statement []byte) ([]byte, error) {
	env, err := s.dsse.SignMessage(bytes.NewReader(statement))
	if err != nil {
		return nil, fmt.Errorf("sign statement with %s: %w", s.id, err)
	}
	return env, nil
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
// each signer.
func SignStatement(statement []byte, signers ...*Signer) ([]byte, error) {
	switch len(signers) {
	case 0:
		return nil, fmt.Errorf("sign statement: no signing key")
	case 1:
		return signers[0].Sign(statement)
	}
	svs := make([]signature.Signer, len(signers))
	for i, s := range signers {
		svs[i] = s.sv
	}
	env, err := sigdsse.WrapMultiSigner(PayloadType, svs...).SignMessage(bytes.NewReader(statement))
	if err != nil {
		return nil, fmt.Errorf("sign statement with %d keys: %w", len(signers), err)
	}
	return env, nil
}
