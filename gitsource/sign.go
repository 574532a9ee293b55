package gitsource

import (
	"bytes"
	"fmt"
	"io"

	"github.com/ProtonMail/go-crypto/openpgp"
)

// Signer signs a commit's encoded bytes; the result is stored in the
// commit's "gpgsig" header. It is go-git's Signer interface. PGPSigner and
// SSHSigner implement it.
type Signer interface {
	Sign(message io.Reader) ([]byte, error)
}

// PGPSigner signs with an OpenPGP private key (already decrypted).
type PGPSigner struct{ Entity *openpgp.Entity }

// NewPGPSigner reads an armored private key, decrypting it with passphrase.
func NewPGPSigner(armoredPrivateKey, passphrase string) (*PGPSigner, error) {
	list, err := openpgp.ReadArmoredKeyRing(bytes.NewReader([]byte(armoredPrivateKey)))
	if err != nil {
		return nil, fmt.Errorf("read PGP signing key: %w", err)
	}
	if len(list) == 0 || list[0].PrivateKey == nil {
		return nil, fmt.Errorf("read PGP signing key: no private key in the armored block")
	}
	e := list[0]
	if e.PrivateKey.Encrypted {
		if err := e.DecryptPrivateKeys([]byte(passphrase)); err != nil {
			return nil, fmt.Errorf("decrypt PGP signing key: wrong passphrase or damaged key")
		}
	}
	return &PGPSigner{Entity: e}, nil
}

// Sign implements Signer with an armored detached signature.
func (s *PGPSigner) Sign(message io.Reader) ([]byte, error) {
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, s.Entity, message, nil); err != nil {
		return nil, fmt.Errorf("PGP sign: %w", err)
	}
	return buf.Bytes(), nil
}
