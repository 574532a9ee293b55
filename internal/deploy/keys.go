package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/reconcile"
)

// openKeys loads the signing key at ref (with load, when set): in the
// background when it can (see loadKeysInBackground), at once when a
// passphrase must be typed (the prompt must come before any progress
// output) or the key file cannot be read (a wrong path fails before
// anything runs).
func openKeys(ctx context.Context, ref string, load func(context.Context) (*attest.Signer, error), others attest.Verifiers) (reconcile.Keys, error) {
	if load == nil {
		if !attest.IsKMSRef(ref) {
			if _, err := os.Stat(ref); err != nil {
				return nil, fmt.Errorf("read signing key: %w (give the key file expsync keygen made, or make one with `expsync keygen --key-prefix NAME`)", err)
			}
		}
		load = func(ctx context.Context) (*attest.Signer, error) { return attest.LoadSigner(ctx, ref) }
	}
	keys := loadKeysInBackground(ctx, ref, load, others)
	if attest.PassphraseFromTerminal() {
		if _, _, err := keys(); err != nil {
			return nil, err
		}
	}
	return keys, nil
}

// loadKeysInBackground starts decrypting the signing key and returns Keys
// that wait for it. A key in cosign's encrypted format costs ~0.2 s of one
// core (scrypt) to decrypt; loaded in the background, it no longer delays
// planning and the first runs, only the first signature or verification.
// others are further trusted keys, already loaded.
func loadKeysInBackground(ctx context.Context, ref string, load func(context.Context) (*attest.Signer, error), others attest.Verifiers) reconcile.Keys {
	type loaded struct {
		signer  *attest.Signer
		trusted attest.Verifiers
		err     error
	}
	done := make(chan loaded, 1)
	go func() {
		signer, err := load(ctx)
		if err != nil {
			done <- loaded{err: reconcile.SigningKeyError(err)}
			return
		}
		own, err := attest.NewKey(ref, signer.Public())
		if err != nil {
			done <- loaded{err: reconcile.SigningKeyError(err)}
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

// CommitSigner is the key results commits are signed with.
type CommitSigner struct {
	Signer gitsource.Signer
	// OwnKey is the authorized_keys line of an SSH key ("" for PGP): added
	// to each repository's allowed commit keys, so expsync accepts its own
	// results commits when it verifies a branch's commits.
	OwnKey string
}

// LoadCommitSigner reads a results-commit signing key file: an OpenSSH/PEM
// private key or an armored PGP private key, decrypted with passphrase.
// file "" is no signer.
func LoadCommitSigner(file, passphrase string) (CommitSigner, error) {
	if file == "" {
		return CommitSigner{}, nil
	}
	data, err := os.ReadFile(file)
	if err != nil {
		return CommitSigner{}, fmt.Errorf("commit signing key: %w", err)
	}
	s, err := ParseCommitSigner(data, passphrase)
	if err != nil {
		return CommitSigner{}, fmt.Errorf("commit signing key %s: %w", file, err)
	}
	return s, nil
}

// ParseCommitSigner reads a results-commit signing key (the content of a
// key file or of a Secret's key).
func ParseCommitSigner(data []byte, passphrase string) (CommitSigner, error) {
	if strings.Contains(string(data), "BEGIN PGP PRIVATE KEY") {
		s, err := gitsource.NewPGPSigner(string(data), passphrase)
		if err != nil {
			return CommitSigner{}, err
		}
		return CommitSigner{Signer: s}, nil
	}
	s, err := gitsource.NewSSHSigner(data, passphrase)
	if err != nil {
		return CommitSigner{}, err
	}
	return CommitSigner{Signer: s, OwnKey: strings.TrimSpace(string(ssh.MarshalAuthorizedKey(s.Signer.PublicKey())))}, nil
}

// ReadCommitKeys reads the files of the keys allowed to sign commits.
func ReadCommitKeys(files []string) ([]string, error) {
	var texts []string
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, fmt.Errorf("commit key: %w", err)
		}
		texts = append(texts, string(data))
	}
	return texts, nil
}

// CommitVerifyPolicy builds the policy of the keys allowed to sign commits,
// given as texts: an armored PGP public key each, or authorized_keys lines
// (allowed signers). Verification is Required.
func CommitVerifyPolicy(keys []string) (*gitsource.VerifyPolicy, error) {
	if len(keys) == 0 {
		return nil, errors.New("--verify-commits needs at least one --commit-key")
	}
	p := &gitsource.VerifyPolicy{Required: true}
	for _, text := range keys {
		if strings.Contains(text, "BEGIN PGP PUBLIC KEY") {
			p.PGPKeys = append(p.PGPKeys, text)
			continue
		}
		for _, line := range strings.Split(text, "\n") {
			if line = strings.TrimSpace(line); line != "" && !strings.HasPrefix(line, "#") {
				p.SSHKeys = append(p.SSHKeys, line)
			}
		}
	}
	return p, nil
}
