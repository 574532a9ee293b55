package gitsource

import (
	"bytes"
	"fmt"
	"io"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

// Git SSH signatures are OpenSSH's "sshsig" format (PROTOCOL.sshsig),
// read and written by github.com/hiddeco/sshsig, the library Flux's
// source-controller uses. What stays here is expsync's policy: which keys
// are allowed, in which namespace, and messages that say which key signed.

type sshKey struct {
	key ssh.PublicKey
	fp  string
}

func parseSSHAuthorizedKey(line string) (sshKey, error) {
	k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
	if err != nil {
		return sshKey{}, fmt.Errorf("not a PGP armored key nor an authorized_keys line: %w", err)
	}
	return sshKey{key: k, fp: ssh.FingerprintSHA256(k)}, nil
}

// verifySSHSignature checks an armored SSH signature over msg in namespace
// ns against the allowed keys and returns the signer's fingerprint. The key
// is matched against the allow list before the signature is trusted; the
// library refuses ssh-rsa signatures (SHA-1) and hashes other than SHA-256
// and SHA-512.
func verifySSHSignature(allowed []sshKey, msg, armored []byte, ns string) (string, error) {
	sig, err := sshsig.Unarmor(armored)
	if err != nil {
		return "", fmt.Errorf("malformed SSH signature: %w", err)
	}
	if sig.Namespace != ns {
		return "", fmt.Errorf("SSH signature namespace %q, want %q", sig.Namespace, ns)
	}
	var match *sshKey
	for i := range allowed {
		if bytes.Equal(allowed[i].key.Marshal(), sig.PublicKey.Marshal()) {
			match = &allowed[i]
			break
		}
	}
	if match == nil {
		return "", fmt.Errorf("SSH signature made by key %s, which is not allowed", ssh.FingerprintSHA256(sig.PublicKey))
	}
	if err := sshsig.Verify(bytes.NewReader(msg), sig, match.key, sig.HashAlgorithm, ns); err != nil {
		return "", fmt.Errorf("SSH signature by %s does not verify: %w", match.fp, err)
	}
	return "SSH " + match.fp, nil
}

// SSHSigner signs commits in Git's SSH signature format.
type SSHSigner struct {
	Signer ssh.Signer
	// Namespace defaults to "git".
	Namespace string
}

// NewSSHSigner parses a private key (PEM or OpenSSH format).
func NewSSHSigner(privateKey []byte, passphrase string) (*SSHSigner, error) {
	var s ssh.Signer
	var err error
	if passphrase != "" {
		s, err = ssh.ParsePrivateKeyWithPassphrase(privateKey, []byte(passphrase))
	} else {
		s, err = ssh.ParsePrivateKey(privateKey)
	}
	if err != nil {
		return nil, fmt.Errorf("read SSH signing key: %w", err)
	}
	return &SSHSigner{Signer: s}, nil
}

// Sign implements go-git's Signer: it returns an armored SSH signature
// (SHA-512, as git and ssh-keygen make them; RSA keys sign with
// rsa-sha2-512).
func (s *SSHSigner) Sign(message io.Reader) ([]byte, error) {
	ns := s.Namespace
	if ns == "" {
		ns = "git"
	}
	sig, err := sshsig.Sign(message, s.Signer, sshsig.HashSHA512, ns)
	if err != nil {
		return nil, fmt.Errorf("SSH sign: %w", err)
	}
	return sshsig.Armor(sig), nil
}
