package gitsource

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Git SSH signatures use OpenSSH's "sshsig" format (PROTOCOL.sshsig in the
// OpenSSH sources): an armored blob
//
//	"SSHSIG" uint32(1) string(publickey) string(namespace) string(reserved)
//	string(hash_algorithm) string(signature)
//
// whose signature covers
//
//	"SSHSIG" string(namespace) string(reserved) string(hash_algorithm) string(H(message)).

const sshsigMagic = "SSHSIG"

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

type sshsigBlob struct {
	Version       uint32
	PublicKey     []byte
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Signature     []byte
}

type sshsigSigned struct {
	Namespace     string
	Reserved      string
	HashAlgorithm string
	Hash          []byte
}

func sshsigHash(alg string, msg []byte) ([]byte, error) {
	switch alg {
	case "sha512":
		h := sha512.Sum512(msg)
		return h[:], nil
	case "sha256":
		h := sha256.Sum256(msg)
		return h[:], nil
	}
	return nil, fmt.Errorf("SSH signature uses unsupported hash %q", alg)
}

func sshsigSignedData(ns, alg string, msg []byte) ([]byte, error) {
	h, err := sshsigHash(alg, msg)
	if err != nil {
		return nil, err
	}
	return append([]byte(sshsigMagic), ssh.Marshal(sshsigSigned{Namespace: ns, HashAlgorithm: alg, Hash: h})...), nil
}

// verifySSHSignature checks an armored SSH signature over msg in namespace
// ns against the allowed keys and returns the signer's fingerprint. The key
// is matched against the allow list before the signature is trusted.
func verifySSHSignature(allowed []sshKey, msg, armored []byte, ns string) (string, error) {
	blk, _ := pem.Decode(armored)
	if blk == nil || blk.Type != "SSH SIGNATURE" {
		return "", errors.New("malformed SSH signature (no SSH SIGNATURE block)")
	}
	raw := blk.Bytes
	if !bytes.HasPrefix(raw, []byte(sshsigMagic)) {
		return "", errors.New("malformed SSH signature (bad magic)")
	}
	var b sshsigBlob
	if err := ssh.Unmarshal(raw[len(sshsigMagic):], &b); err != nil {
		return "", fmt.Errorf("malformed SSH signature: %w", err)
	}
	if b.Version != 1 {
		return "", fmt.Errorf("SSH signature version %d is not supported", b.Version)
	}
	if b.Namespace != ns {
		return "", fmt.Errorf("SSH signature namespace %q, want %q", b.Namespace, ns)
	}
	pub, err := ssh.ParsePublicKey(b.PublicKey)
	if err != nil {
		return "", fmt.Errorf("malformed SSH signature key: %w", err)
	}
	var match *sshKey
	for i := range allowed {
		if bytes.Equal(allowed[i].key.Marshal(), pub.Marshal()) {
			match = &allowed[i]
			break
		}
	}
	if match == nil {
		return "", fmt.Errorf("SSH signature made by key %s, which is not allowed", ssh.FingerprintSHA256(pub))
	}
	sig := new(ssh.Signature)
	if err := ssh.Unmarshal(b.Signature, sig); err != nil {
		return "", fmt.Errorf("malformed SSH signature value: %w", err)
	}
	if pub.Type() == ssh.KeyAlgoRSA && sig.Format == ssh.KeyAlgoRSA {
		return "", errors.New("SSH signature uses ssh-rsa with SHA-1, which is refused")
	}
	data, err := sshsigSignedData(ns, b.HashAlgorithm, msg)
	if err != nil {
		return "", err
	}
	if err := pub.Verify(data, sig); err != nil {
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

// Sign implements go-git's Signer: it returns an armored SSH signature.
func (s *SSHSigner) Sign(message io.Reader) ([]byte, error) {
	msg, err := io.ReadAll(message)
	if err != nil {
		return nil, err
	}
	ns := s.Namespace
	if ns == "" {
		ns = "git"
	}
	const alg = "sha512"
	data, err := sshsigSignedData(ns, alg, msg)
	if err != nil {
		return nil, err
	}
	var sig *ssh.Signature
	if as, ok := s.Signer.(ssh.AlgorithmSigner); ok && s.Signer.PublicKey().Type() == ssh.KeyAlgoRSA {
		sig, err = as.SignWithAlgorithm(rand.Reader, data, ssh.KeyAlgoRSASHA512)
	} else {
		sig, err = s.Signer.Sign(rand.Reader, data)
	}
	if err != nil {
		return nil, fmt.Errorf("SSH sign: %w", err)
	}
	blob := append([]byte(sshsigMagic), ssh.Marshal(sshsigBlob{
		Version: 1, PublicKey: s.Signer.PublicKey().Marshal(), Namespace: ns,
		HashAlgorithm: alg, Signature: ssh.Marshal(sig),
	})...)
	enc := base64.StdEncoding.EncodeToString(blob)
	var out strings.Builder
	out.WriteString("-----BEGIN SSH SIGNATURE-----\n")
	for len(enc) > 70 {
		out.WriteString(enc[:70] + "\n")
		enc = enc[70:]
	}
	out.WriteString(enc + "\n-----END SSH SIGNATURE-----\n")
	return []byte(out.String()), nil
}
