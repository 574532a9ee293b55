package attest

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/expsync/expsync/contract"
)

// Limits on what the verifier reads, so a hostile file costs little.
const (
	// MaxEnvelopeBytes bounds an envelope file read: the readers' limit of
	// contract/limits.go, above what expsync writes (contract.MaxEnvelopeBytes).
	MaxEnvelopeBytes = contract.ReadEnvelopeBytes
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
	env, ok := parseCompactEnvelope(data)
	if !ok {
		// json.Unmarshal refuses anything after the object but white space,
		// so a file with two envelopes is malformed, not half-read.
		env = &Envelope{}
		if err := json.Unmarshal(data, env); err != nil {
			return nil, fmt.Errorf("%w: %v", ErrMalformedEnvelope, err)
		}
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
	return env, nil
}

// parseCompactEnvelope reads the compact form expsync, cosign and sigstore
// write — {"payloadType":"…","payload":"…","signatures":[{"keyid":"…","sig":"…"},…]}
// with keyid optional and every string plain printable ASCII — by scanning
// for quotes, several times faster than encoding/json on a base64 payload.
// Anything else (white space, other key orders, escapes, extra fields)
// returns false and goes to encoding/json; FuzzParseEnvelope checks that the
// two agree whenever this one accepts.
func parseCompactEnvelope(data []byte) (*Envelope, bool) {
	data = bytes.TrimRight(data, " \t\r\n")
	var env Envelope
	var ok bool
	if data, ok = cutPrefix(data, `{"payloadType":"`); !ok {
		return nil, false
	}
	if env.PayloadType, data, ok = plainString(data); !ok {
		return nil, false
	}
	if data, ok = cutPrefix(data, `,"payload":"`); !ok {
		return nil, false
	}
	if env.Payload, data, ok = plainString(data); !ok {
		return nil, false
	}
	if data, ok = cutPrefix(data, `,"signatures":[`); !ok {
		return nil, false
	}
	env.Signatures = []EnvelopeSignature{}
	for len(data) > 0 && data[0] != ']' {
		if len(env.Signatures) > 0 {
			if data, ok = cutPrefix(data, `,`); !ok {
				return nil, false
			}
		}
		var sig EnvelopeSignature
		if rest, ok := cutPrefix(data, `{"keyid":"`); ok {
			if sig.KeyID, data, ok = plainString(rest); !ok {
				return nil, false
			}
			if data, ok = cutPrefix(data, `,"sig":"`); !ok {
				return nil, false
			}
		} else if data, ok = cutPrefix(data, `{"sig":"`); !ok {
			return nil, false
		}
		if sig.Sig, data, ok = plainString(data); !ok {
			return nil, false
		}
		if data, ok = cutPrefix(data, `}`); !ok {
			return nil, false
		}
		env.Signatures = append(env.Signatures, sig)
	}
	if string(data) != "]}" {
		return nil, false
	}
	return &env, true
}

func cutPrefix(data []byte, prefix string) ([]byte, bool) {
	if len(data) < len(prefix) || string(data[:len(prefix)]) != prefix {
		return data, false
	}
	return data[len(prefix):], true
}

// plainString reads a JSON string body up to its closing quote, accepting
// only printable ASCII without escapes (which decodes to itself).
func plainString(data []byte) (string, []byte, bool) {
	end := bytes.IndexByte(data, '"')
	if end < 0 {
		return "", data, false
	}
	for _, c := range data[:end] {
		if c < 0x20 || c > 0x7e || c == '\\' {
			return "", data, false
		}
	}
	return string(data[:end]), data[end+1:], true
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
