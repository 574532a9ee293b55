package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"sync"

	"github.com/expsync/expsync/attest"
)

// Keys returns the signer of run statements and the keys whose signatures
// make a results folder count as done (the signer's own public key among
// them). It may wait for a key still being decrypted.
type Keys func() (*attest.Signer, attest.Verifiers, error)

// ErrSigningKey marks a signing key that could not be loaded: a reconcile
// stops at its first signature; the runs it executed stay in the run cache
// for the next one.
var ErrSigningKey = errors.New("signing key unavailable")

type signingKeyError struct{ err error }

func (e signingKeyError) Error() string   { return e.err.Error() }
func (e signingKeyError) Unwrap() []error { return []error{ErrSigningKey, e.err} }

// keys returns Keys(), or Signer and Trusted when Keys is not set.
func (r *Reconciler) keys() (*attest.Signer, attest.Verifiers, error) {
	if r.Keys != nil {
		return r.Keys()
	}
	return r.Signer, r.Trusted, nil
}

// openKeys loads the signing key at ref: in the background when it can
// (see loadKeysInBackground), at once when a passphrase must be typed (the
// prompt must come before any progress output) or the key file cannot be
// read (a wrong path fails before anything runs).
func openKeys(ctx context.Context, ref string, others attest.Verifiers) (Keys, error) {
	if !attest.IsKMSRef(ref) {
		if _, err := os.Stat(ref); err != nil {
			return nil, fmt.Errorf("read signing key: %w (give the key file expsync keygen made, or make one with `expsync keygen --key-prefix NAME`)", err)
		}
	}
	keys := loadKeysInBackground(ctx, ref, others)
	if attest.PassphraseFromTerminal() {
		if _, _, err := keys(); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// loadKeysInBackground starts decrypting the signing key at ref and returns
// Keys that wait for it. A key in cosign's encrypted format costs ~0.2 s of
// one core (scrypt) to decrypt; loaded in the background, it no longer
// delays planning and the first runs, only the first signature or
// verification. others are further trusted keys, already loaded.
func loadKeysInBackground(ctx context.Context, ref string, others attest.Verifiers) Keys {
	type loaded struct {
		signer  *attest.Signer
		trusted attest.Verifiers
		err     error
	}
	done := make(chan loaded, 1)
	go func() {
		signer, err := attest.LoadSigner(ctx, ref)
		if err != nil {
			done <- loaded{err: signingKeyError{err}}
			return
		}
		own, err := attest.NewKey(ref, signer.Public())
		if err != nil {
			done <- loaded{err: signingKeyError{err}}
			return
		}
		done <- loaded{signer: signer, trusted: append(attest.Verifiers{own}, others...)}
	}()
	result := sync.OnceValue(func() loaded { return <-done })
	return func() (*attest.Signer, attest.Verifiers, error) {
		l := result()
		return l.signer, l.trusted, l.err
	}
}
