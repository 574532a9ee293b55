package attest

import (
	"context"
	"crypto"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/sigstore/sigstore/pkg/signature/kms"
	"golang.org/x/term"
)

// PasswordEnv holds the passphrase of encrypted private keys. COSIGN_PASSWORD
// is read too when it is unset, so a key from `cosign generate-key-pair`
// works as it does in cosign.
const PasswordEnv = "EXPSYNC_PASSWORD"

const cosignPasswordEnv = "COSIGN_PASSWORD"

// kmsSchemes are the key URI schemes sigstore's KMS support knows.
var kmsSchemes = []string{"awskms://", "gcpkms://", "azurekms://", "hashivault://"}

// IsKMSRef reports whether ref is a KMS key URI rather than a file path.
func IsKMSRef(ref string) bool {
	for _, s := range kmsSchemes {
		if strings.HasPrefix(ref, s) {
			return true
		}
	}
	return false
}

// PassphraseFromTerminal reports whether Passphrase would ask on the
// terminal: no passphrase in the environment, and stdin is a terminal.
func PassphraseFromTerminal() bool {
	_, ours := os.LookupEnv(PasswordEnv)
	_, cosigns := os.LookupEnv(cosignPasswordEnv)
	return !ours && !cosigns && term.IsTerminal(int(os.Stdin.Fd()))
}

// Passphrase returns the passphrase for encrypted keys: $EXPSYNC_PASSWORD,
// else $COSIGN_PASSWORD, else a prompt when stdin is a terminal, else empty
// (cosign's convention for keys made without a passphrase).
func Passphrase(prompt string, confirm bool) ([]byte, error) {
	if p, ok := os.LookupEnv(PasswordEnv); ok {
		return []byte(p), nil
	}
	if p, ok := os.LookupEnv(cosignPasswordEnv); ok {
		return []byte(p), nil
	}
	fd := int(os.Stdin.Fd())
	if !term.IsTerminal(fd) {
		return []byte{}, nil
	}
	fmt.Fprint(os.Stderr, prompt)
	first, err := term.ReadPassword(fd)
	fmt.Fprintln(os.Stderr)
	if err != nil {
		return nil, fmt.Errorf("read passphrase from terminal: %w", err)
	}
	if confirm {
		fmt.Fprint(os.Stderr, "Enter passphrase again: ")
		second, err := term.ReadPassword(fd)
		fmt.Fprintln(os.Stderr)
		if err != nil {
			return nil, fmt.Errorf("read passphrase from terminal: %w", err)
		}
		if string(first) != string(second) {
			return nil, errors.New("passphrases do not match")
		}
	}
	return first, nil
}

// signerCache keeps decrypted signers for the life of the process: scrypt
// makes each decryption cost ~100 ms on purpose, and a server signs many
// runs. Entries are keyed by path and content digest, so an edited key file
// is read again.
var signerCache sync.Map // string -> *Signer

// LoadSigner opens the signing key at ref: a PEM file (decrypted once per
// process with Passphrase) or a KMS URI.
func LoadSigner(ctx context.Context, ref string) (*Signer, error) {
	if IsKMSRef(ref) {
		return loadKMSSigner(ctx, ref)
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("read signing key: %w", err)
	}
	sum := sha256.Sum256(data)
	cacheKey := ref + "\x00" + string(sum[:])
	if s, ok := signerCache.Load(cacheKey); ok {
		return s.(*Signer), nil
	}
	key, err := DecodePrivateKey(data, func() ([]byte, error) {
		return Passphrase(fmt.Sprintf("Enter passphrase for %s: ", ref), false)
	})
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", ref, err)
	}
	s, err := NewSigner(key)
	if err != nil {
		return nil, fmt.Errorf("signing key %s: %w", ref, err)
	}
	actual, _ := signerCache.LoadOrStore(cacheKey, s)
	return actual.(*Signer), nil
}

// loadKMSSigner resolves a KMS URI through sigstore's KMS registry. The cloud
// provider modules (AWS, GCP, Azure, Vault SDKs) are not compiled into
// expsync; sigstore then looks for its KMS CLI plugin, an executable named
// sigstore-kms-<scheme> on PATH, which is how such keys work here.
func loadKMSSigner(ctx context.Context, ref string) (*Signer, error) {
	sv, err := kms.Get(ctx, ref, crypto.SHA256)
	if err != nil {
		var notFound *kms.ProviderNotFoundError
		if errors.As(err, &notFound) {
			scheme := strings.TrimSuffix(ref[:strings.Index(ref, "://")+3], "://")
			return nil, fmt.Errorf("KMS provider %s:// is not compiled into expsync and no sigstore KMS plugin "+
				"(an executable named sigstore-kms-%s) is on PATH; install that plugin or use a key file made by `expsync keygen`",
				scheme, scheme)
		}
		return nil, fmt.Errorf("open KMS key %s: %w", ref, err)
	}
	return NewSignerFromSigstore(sv)
}

// LoadVerifierKey reads a public key file, or the public half of a KMS key.
func LoadVerifierKey(ctx context.Context, ref string) (*Key, error) {
	if IsKMSRef(ref) {
		s, err := loadKMSSigner(ctx, ref)
		if err != nil {
			return nil, err
		}
		return NewKey(ref, s.Public())
	}
	data, err := os.ReadFile(ref)
	if err != nil {
		return nil, fmt.Errorf("read public key: %w", err)
	}
	pub, err := DecodePublicKey(data)
	if err != nil {
		return nil, fmt.Errorf("public key %s: %w", ref, err)
	}
	return NewKey(ref, pub)
}
