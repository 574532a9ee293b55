package attest

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"strings"

	"github.com/secure-systems-lab/go-securesystemslib/encrypted"
	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

// KeyType names a signing algorithm family.
type KeyType string

const (
	// KeyECDSA is ECDSA on P-256 with SHA-256: the default, and cosign's.
	KeyECDSA KeyType = "ecdsa"
	// KeyEd25519 is pure Ed25519, as DSSE and in-toto tools use it.
	KeyEd25519 KeyType = "ed25519"
	// KeyRSA is RSA-3072 with PKCS #1 v1.5 and SHA-256 (sigstore's default for RSA).
	KeyRSA KeyType = "rsa"
)

// KeyTypes lists the accepted --type values.
var KeyTypes = []KeyType{KeyECDSA, KeyEd25519, KeyRSA}

// PEM block types of private keys. The two encrypted ones are cosign's
// format: PKCS #8 DER sealed by go-securesystemslib's encrypted package
// (scrypt + NaCl secretbox). expsync writes the SIGSTORE one, as cosign does.
const (
	pemEncryptedSigstore = "ENCRYPTED SIGSTORE PRIVATE KEY"
	pemEncryptedCosign   = "ENCRYPTED COSIGN PRIVATE KEY"
	pemPKCS8             = "PRIVATE KEY"
	pemPKCS1RSA          = "RSA PRIVATE KEY"
	pemSEC1EC            = "EC PRIVATE KEY"
)

// ErrWrongPassphrase is wrapped when an encrypted key does not open.
var ErrWrongPassphrase = errors.New("wrong passphrase (set EXPSYNC_PASSWORD to the key's passphrase)")

// GenerateKey makes a new private key of the given type.
func GenerateKey(t KeyType) (crypto.Signer, error) {
	switch t {
	case KeyECDSA, "":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case KeyEd25519:
		_, priv, err := ed25519.GenerateKey(rand.Reader)
		return priv, err
	case KeyRSA:
		return rsa.GenerateKey(rand.Reader, 3072)
	default:
		return nil, fmt.Errorf("unknown key type %q: use one of %s", t, keyTypeList())
	}
}

func keyTypeList() string {
	names := make([]string, len(KeyTypes))
	for i, t := range KeyTypes {
		names[i] = string(t)
	}
	return strings.Join(names, ", ")
}

// KeyPair is a key pair encoded as PEM files.
type KeyPair struct {
	// Private is the private key in cosign's encrypted format.
	Private []byte
	// Public is the PKIX public key ("PUBLIC KEY" PEM).
	Public []byte
}

// EncodeKeyPair encodes priv the way `cosign generate-key-pair` does:
// PKCS #8 DER encrypted with passphrase in an "ENCRYPTED SIGSTORE PRIVATE
// KEY" PEM block, and the public key as PKIX PEM. An empty passphrase still
// writes the encrypted format (cosign does the same), so the key loads in
// cosign either way; it just protects nothing.
func EncodeKeyPair(priv crypto.Signer, passphrase []byte) (KeyPair, error) {
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode private key: %w", err)
	}
	if passphrase == nil {
		passphrase = []byte{}
	}
	sealed, err := encrypted.Encrypt(der, passphrase)
	if err != nil {
		return KeyPair{}, fmt.Errorf("encrypt private key: %w", err)
	}
	pub, err := cryptoutils.MarshalPublicKeyToPEM(priv.Public())
	if err != nil {
		return KeyPair{}, fmt.Errorf("encode public key: %w", err)
	}
	return KeyPair{
		Private: pem.EncodeToMemory(&pem.Block{Type: pemEncryptedSigstore, Bytes: sealed}),
		Public:  pub,
	}, nil
}

// DecodePrivateKey reads a PEM private key: cosign's encrypted formats
// (SIGSTORE and COSIGN), or plain PKCS #8, PKCS #1 (RSA) and SEC 1 (EC).
// passphrase is called only for encrypted keys.
func DecodePrivateKey(pemBytes []byte, passphrase func() ([]byte, error)) (crypto.Signer, error) {
	block, _ := pem.Decode(pemBytes)
	if block == nil {
		return nil, errors.New("not a PEM file: expected a private key made by `expsync keygen` or `cosign generate-key-pair`")
	}
	var (
		key crypto.PrivateKey
		err error
	)
	switch block.Type {
	case pemEncryptedSigstore, pemEncryptedCosign:
		var pass []byte
		if passphrase != nil {
			if pass, err = passphrase(); err != nil {
				return nil, fmt.Errorf("read passphrase: %w", err)
			}
		}
		if pass == nil {
			pass = []byte{}
		}
		der, derr := encrypted.Decrypt(block.Bytes, pass)
		if derr != nil {
			if strings.Contains(derr.Error(), "decryption failed") {
				return nil, ErrWrongPassphrase
			}
			return nil, fmt.Errorf("decrypt %s: %w", block.Type, derr)
		}
		key, err = x509.ParsePKCS8PrivateKey(der)
	case pemPKCS8:
		key, err = x509.ParsePKCS8PrivateKey(block.Bytes)
	case pemPKCS1RSA:
		key, err = x509.ParsePKCS1PrivateKey(block.Bytes)
	case pemSEC1EC:
		key, err = x509.ParseECPrivateKey(block.Bytes)
	default:
		return nil, fmt.Errorf("PEM block %q is not a private key this tool reads (want %q, %q, %q, %q or %q)",
			block.Type, pemEncryptedSigstore, pemEncryptedCosign, pemPKCS8, pemPKCS1RSA, pemSEC1EC)
	}
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", block.Type, err)
	}
	return checkSigner(key)
}

func checkSigner(key crypto.PrivateKey) (crypto.Signer, error) {
	switch k := key.(type) {
	case *ecdsa.PrivateKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported (use P-256)", k.Curve.Params().Name)
		}
		return k, nil
	case ed25519.PrivateKey:
		return k, nil
	case *rsa.PrivateKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too small (use at least 2048)", k.N.BitLen())
		}
		return k, nil
	default:
		return nil, fmt.Errorf("private key of type %T is not supported (use ECDSA, Ed25519 or RSA)", key)
	}
}

// DecodePublicKey reads a PKIX "PUBLIC KEY" PEM (what `expsync keygen` and
// `cosign generate-key-pair` write as *.pub).
func DecodePublicKey(pemBytes []byte) (crypto.PublicKey, error) {
	pub, err := cryptoutils.UnmarshalPEMToPublicKey(pemBytes)
	if err != nil {
		return nil, fmt.Errorf("parse public key: %w", err)
	}
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() && k.Curve != elliptic.P521() {
			return nil, fmt.Errorf("ECDSA curve %s is not supported (use P-256)", k.Curve.Params().Name)
		}
	case *rsa.PublicKey:
		if k.N.BitLen() < 2048 {
			return nil, fmt.Errorf("RSA key of %d bits is too small (use at least 2048)", k.N.BitLen())
		}
	case ed25519.PublicKey:
	default:
		return nil, fmt.Errorf("public key of type %T is not supported (use ECDSA, Ed25519 or RSA)", pub)
	}
	return pub, nil
}

// KeyID is a stable, printable name for a public key: "SHA256:" and the
// unpadded base64 sha256 of its PKIX DER, short enough for a table.
func KeyID(pub crypto.PublicKey) string {
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return fmt.Sprintf("unknown-%T", pub)
	}
	return "SHA256:" + sha256Base64(der)
}
