package reconcile

import (
	"errors"

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

// SigningKeyError marks err, a signing key's failure to load, as
// ErrSigningKey without changing its message: what a Keys function returns.
func SigningKeyError(err error) error { return signingKeyError{err} }

type signingKeyError struct{ err error }

func (e signingKeyError) Error() string   { return e.err.Error() }
func (e signingKeyError) Unwrap() []error { return []error{ErrSigningKey, e.err} }

// KeyError waits for the signing key (Keys may decrypt it in the
// background) and says why it cannot be used, or returns nil. A
// long-running caller such as `expsync serve` checks it before serving: the
// key is loaded once, so a key that fails now would fail every reconcile,
// and retrying at each poll would only log the same error forever.
func (r *Reconciler) KeyError() error {
	_, _, err := r.keys()
	return err
}

// TrustedKeys are the public keys whose signed results count (the signing
// key's own and the further trusted keys), for readers of results beside
// the reconciler (pull request reports). It waits for the signing key like
// KeyError.
func (r *Reconciler) TrustedKeys() (attest.Verifiers, error) {
	_, trusted, err := r.keys()
	return trusted, err
}

// keys returns Keys(), or Signer and Trusted when Keys is not set.
func (r *Reconciler) keys() (*attest.Signer, attest.Verifiers, error) {
	if r.Keys != nil {
		return r.Keys()
	}
	return r.Signer, r.Trusted, nil
}
