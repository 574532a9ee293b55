package attest

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/dsse"
	"github.com/sigstore/sigstore/pkg/signature"
	"github.com/sigstore/sigstore/pkg/signature/options"
)

// Errors wrapped by VerifyEnvelope, one per kind of rejection.
var (
	ErrNoSignatures  = errors.New("envelope has no signatures")
	ErrSignature     = errors.New("signature verification failed")
	ErrPayloadType   = errors.New("wrong payload type")
	ErrStatement     = errors.New("malformed in-toto statement")
	ErrPredicateType = errors.New("wrong predicate type")
	ErrBuilderID     = errors.New("builder ID not allowed")
	ErrUsage         = errors.New("invalid verification policy")
)

// Key is a trusted public key and the builder IDs it may vouch for.
type Key struct {
	// Name says where the key came from (a file path or KMS URI).
	Name string
	// ID is KeyID(Public).
	ID     string
	Public crypto.PublicKey
	// BuilderIDs are the builder IDs this key may sign for; empty allows any
	// (subject to VerifyOptions.BuilderIDs).
	BuilderIDs []string
	verifiers  []signature.Verifier
}

// NewKey makes a trusted key. Ed25519 keys accept pure Ed25519 (DSSE's and
// in-toto's) and Ed25519ph (what cosign signs with).
func NewKey(name string, pub crypto.PublicKey, builderIDs ...string) (*Key, error) {
	var vs []signature.Verifier
	if edPub, ok := pub.(ed25519.PublicKey); ok {
		pure, err := signature.LoadED25519Verifier(edPub)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		ph, err := signature.LoadED25519phVerifier(edPub)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		vs = []signature.Verifier{pure, ph}
	} else {
		v, err := signature.LoadDefaultVerifier(pub)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", name, err)
		}
		vs = []signature.Verifier{v}
	}
	return &Key{Name: name, ID: KeyID(pub), Public: pub, BuilderIDs: builderIDs, verifiers: vs}, nil
}

func (k *Key) verify(message, sig []byte) bool {
	for _, v := range k.verifiers {
		if v.VerifySignature(bytes.NewReader(sig), bytes.NewReader(message), options.NoOpOptionImpl{}) == nil {
			return true
		}
	}
	return false
}

func (k *Key) allowsBuilder(id string) bool {
	return len(k.BuilderIDs) == 0 || slices.Contains(k.BuilderIDs, id)
}

// Verifiers is the set of trusted keys.
type Verifiers []*Key

// VerifyOptions is the verification policy.
type VerifyOptions struct {
	// Threshold is how many distinct trusted keys must have signed (default 1).
	Threshold int
	// BuilderIDs, when set, are the only builder IDs accepted.
	BuilderIDs []string
}

// VerifyEnvelope verifies a DSSE envelope against the trusted keys: the
// signatures first (VerifyDSSE), and only then the payload: the in-toto
// statement and SLSA provenance it carries, and that the builder ID is
// allowed for enough of the keys that signed.
func VerifyEnvelope(envelope []byte, keys Verifiers, opts VerifyOptions) (*Verified, error) {
	d, err := VerifyDSSE(envelope, keys, opts)
	if err != nil {
		return nil, err
	}
	// From here on the payload is authentic: parse it.
	v, err := ParseStatement(d.Payload)
	if err != nil {
		return nil, err
	}
	v.Keys = d.Keys
	if err := checkBuilder(v.BuilderID, d.Keys, d.threshold, opts); err != nil {
		return nil, err
	}
	return v, nil
}

// DSSE is an envelope whose signatures verified.
type DSSE struct {
	// Payload is authentic: signed by Keys under PayloadType.
	Payload []byte
	Keys    []*Key

	threshold int
}

// VerifyDSSE checks an envelope's signatures and payload type without
// reading the payload: at least Threshold distinct trusted keys must have
// signed (each key counts once, a repeated signature counts once, standard
// and URL-safe base64 are both accepted), and the payload type must be
// in-toto's.
func VerifyDSSE(envelope []byte, keys Verifiers, opts VerifyOptions) (*DSSE, error) {
	env, err := ParseEnvelope(envelope)
	if err != nil {
		return nil, err
	}
	keys, threshold, err := checkPolicy(keys, opts)
	if err != nil {
		return nil, err
	}
	payload, signers, err := verifySignatures(env, keys, threshold)
	if err != nil {
		return nil, err
	}
	if env.PayloadType != PayloadType {
		return nil, fmt.Errorf("%w: %q, want %q", ErrPayloadType, env.PayloadType, PayloadType)
	}
	return &DSSE{Payload: payload, Keys: signers, threshold: threshold}, nil
}

// checkPolicy merges keys listed twice (a key counts once however often it
// is given) and checks the threshold against the distinct keys.
func checkPolicy(keys Verifiers, opts VerifyOptions) (Verifiers, int, error) {
	var distinct Verifiers
	byID := map[string]*Key{}
	for _, k := range keys {
		if k == nil {
			continue
		}
		if prev, ok := byID[k.ID]; ok {
			if len(prev.BuilderIDs) > 0 && len(k.BuilderIDs) > 0 {
				prev.BuilderIDs = append(slices.Clone(prev.BuilderIDs), k.BuilderIDs...)
			} else {
				prev.BuilderIDs = nil
			}
			continue
		}
		copyKey := *k
		byID[k.ID] = &copyKey
		distinct = append(distinct, &copyKey)
	}
	threshold := opts.Threshold
	if threshold == 0 {
		threshold = 1
	}
	if len(distinct) == 0 {
		return nil, 0, fmt.Errorf("%w: no trusted keys", ErrUsage)
	}
	if threshold < 0 || threshold > len(distinct) {
		return nil, 0, fmt.Errorf("%w: threshold %d with %d distinct keys", ErrUsage, threshold, len(distinct))
	}
	return distinct, threshold, nil
}

func verifySignatures(env *Envelope, keys Verifiers, threshold int) ([]byte, []*Key, error) {
	if len(env.Signatures) == 0 {
		return nil, nil, ErrNoSignatures
	}
	payload, err := env.DecodePayload()
	if err != nil {
		return nil, nil, err
	}
	pae := dsse.PAE(env.PayloadType, payload)
	accepted := make([]bool, len(keys))
	seen := map[string]bool{}
	var signers []*Key
	var problems []string
	for i, s := range env.Signatures {
		sig, err := decodeBase64(s.Sig)
		if err != nil {
			problems = append(problems, fmt.Sprintf("signature %d: %v", i, err))
			continue
		}
		if seen[string(sig)] {
			problems = append(problems, fmt.Sprintf("signature %d repeats an earlier one and is not counted again", i))
			continue
		}
		seen[string(sig)] = true
		matched := false
		for j, k := range keys {
			if accepted[j] || !k.verify(pae, sig) {
				continue
			}
			accepted[j], matched = true, true
			signers = append(signers, k)
			break
		}
		if !matched {
			problems = append(problems, fmt.Sprintf("signature %d matches no trusted key not already counted", i))
		}
	}
	if len(signers) < threshold {
		detail := fmt.Sprintf("%d of %d required trusted keys signed", len(signers), threshold)
		if len(problems) > 0 {
			detail += " (" + strings.Join(problems, "; ") + ")"
		}
		return nil, nil, fmt.Errorf("%w: %s", ErrSignature, detail)
	}
	return payload, signers, nil
}

func checkBuilder(builderID string, signers []*Key, threshold int, opts VerifyOptions) error {
	if len(opts.BuilderIDs) > 0 && !slices.Contains(opts.BuilderIDs, builderID) {
		return fmt.Errorf("%w: %q is not one of %s", ErrBuilderID, builderID, strings.Join(opts.BuilderIDs, ", "))
	}
	allowed := 0
	for _, k := range signers {
		if k.allowsBuilder(builderID) {
			allowed++
		}
	}
	if allowed < threshold {
		return fmt.Errorf("%w: %q is allowed for %d of the %d keys that signed, %d required", ErrBuilderID, builderID, allowed, len(signers), threshold)
	}
	return nil
}
