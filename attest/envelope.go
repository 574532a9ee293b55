package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// Limits on what the verifier reads, so a hostile file costs little.
const (
	// MaxEnvelopeBytes bounds an envelope file.
	MaxEnvelopeBytes = 16 << 20
	// MaxSignatures bounds the signatures tried per envelope (each is tried
	// against every key).
	MaxSignatures = 32
)

// Envelope is a DSSE envelope as JSON carries it.
type Envelope struct {
	PayloadType string              `json:"payloadType"`
	Payload     string              `json:"payload"`
	Signatures  []EnvelopeSignature `json:"signatures"`
}

// EnvelopeSignature is one signature; KeyID is an unauthenticated hint that
// the verifier ignores (every trusted key is tried).
type EnvelopeSignature struct {
	KeyID string `json:"keyid,omitempty"`
	Sig   string `json:"sig"`
}

// ErrMalformedEnvelope is wrapped by every envelope parse failure.
var ErrMalformedEnvelope = errors.New("malformed DSSE envelope")

// ParseEnvelope parses one DSSE envelope. It checks the shape only: nothing
// in the payload is read before the signatures are verified.
func ParseEnvelope(data []byte) (*Envelope, error) {
	if len(data) > MaxEnvelopeBytes {
		return nil, fmt.Errorf("%w: %d bytes exceeds the %d byte limit", ErrMalformedEnvelope, len(data), MaxEnvelopeBytes)
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	var env Envelope
	if err := dec.Decode(&env); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("%w: data after the envelope (expected one JSON object per file)", ErrMalformedEnvelope)
	}
	if env.PayloadType == "" {
		return nil, fmt.Errorf("%w: no payloadType", ErrMalformedEnvelope)
	}
	if env.Payload == "" {
		return nil, fmt.Errorf("%w: no payload", ErrMalformedEnvelope)
	}
	if len(env.Signatures) > MaxSignatures {
		return nil, fmt.Errorf("%w: %d signatures exceeds the limit of %d", ErrMalformedEnvelope, len(env.Signatures), MaxSignatures)
	}
	return &env, nil
}

// DecodePayload returns the payload bytes.
func (e *Envelope) DecodePayload() ([]byte, error) {
	p, err := decodeBase64(e.Payload)
	if err != nil {
		return nil, fmt.Errorf("%w: payload: %v", ErrMalformedEnvelope, err)
	}
	return p, nil
}

// decodeBase64 accepts standard and URL-safe base64, as DSSE requires of
// verifiers, padded or not.
func decodeBase64(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64 (standard or URL-safe)")
}

func sha256Base64(b []byte) string {
	sum := sha256.Sum256(b)
	return base64.RawStdEncoding.EncodeToString(sum[:])
}
