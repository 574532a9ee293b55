package gitsource

import (
	"bytes"
	"crypto/rand"
	"crypto/rsa"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/hiddeco/sshsig"
	"golang.org/x/crypto/ssh"
)

func TestSSHSignatureRoundTripAndTampering(t *testing.T) {
	pub, priv := newSSHKey(t)
	signer, err := NewSSHSigner(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nresults\n")
	sig, err := signer.Sign(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	allowed := []sshKey{{key: pub, fp: "k"}}
	if _, err := verifySSHSignature(allowed, msg, sig, "git"); err != nil {
		t.Fatalf("own signature: %v", err)
	}
	cases := map[string]struct {
		msg, sig []byte
		ns       string
		keys     []sshKey
		want     string
	}{
		"edited payload":  {append([]byte("x"), msg...), sig, "git", allowed, "does not verify"},
		"other namespace": {msg, sig, "file", allowed, "namespace"},
		"unknown key":     {msg, sig, "git", nil, "not allowed"},
		"not armored":     {msg, []byte("garbage"), "git", allowed, "malformed"},
		"ssh-rsa (SHA-1)": {msg, sha1RSASignature(t), "git", allowed, "ssh-rsa"},
	}
	for name, c := range cases {
		if _, err := verifySSHSignature(c.keys, c.msg, c.sig, c.ns); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%s: err = %v, want %q", name, err, c.want)
		}
	}
}

// FuzzVerifySSHSignature: a signature from a commit is hostile input; it
// must never verify unless made by the allowed key, and never panic.
func FuzzVerifySSHSignature(f *testing.F) {
	pub, priv := newSSHKey(f)
	signer, _ := NewSSHSigner(priv, "")
	good, _ := signer.Sign(strings.NewReader("payload"))
	f.Add([]byte("payload"), good)
	f.Add([]byte("payload"), []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lH\n-----END SSH SIGNATURE-----\n"))
	allowed := []sshKey{{key: pub, fp: "k"}}
	f.Fuzz(func(t *testing.T, msg, sig []byte) {
		_, err := verifySSHSignature(allowed, msg, sig, "git")
		if err == nil && (string(msg) != "payload" || !bytes.Equal(sig, good)) {
			// Another valid signature by the same key over the same payload
			// is possible only with the private key; anything else is a bug.
			if string(msg) != "payload" {
				t.Fatalf("signature over %q verified", msg)
			}
		}
	})
}

// sha1RSASignature is an SSH signature whose RSA signature claims the
// ssh-rsa (SHA-1) algorithm, which OpenSSH no longer accepts.
func sha1RSASignature(t *testing.T) []byte {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(k)
	if err != nil {
		t.Fatal(err)
	}
	sig, err := signer.(ssh.AlgorithmSigner).SignWithAlgorithm(rand.Reader, []byte("x"), ssh.KeyAlgoRSA)
	if err != nil {
		t.Fatal(err)
	}
	return sshsig.Armor(&sshsig.Signature{Version: 1, PublicKey: signer.PublicKey(), Namespace: "git",
		HashAlgorithm: sshsig.HashSHA512, Signature: sig})
}

// TestSSHSignaturesAgreeWithSSHKeygen: OpenSSH is the peer. What SSHSigner
// signs, `ssh-keygen -Y verify` accepts; what ssh-keygen signs (SHA-512,
// and SHA-256 with -O hashalg), verifySSHSignature accepts.
func TestSSHSignaturesAgreeWithSSHKeygen(t *testing.T) {
	keygen, err := exec.LookPath("ssh-keygen")
	if err != nil {
		t.Skip("ssh-keygen (OpenSSH) is not installed; .ci/run installs openssh-client")
	}
	pub, priv := newSSHKey(t)
	dir := t.TempDir()
	keyFile, msgFile := filepath.Join(dir, "key"), filepath.Join(dir, "msg")
	allowedFile := filepath.Join(dir, "allowed")
	msg := []byte("tree 4b825dc642cb6eb9a060e54bf8d69288fbee4904\n\nresults\n")
	for f, data := range map[string][]byte{keyFile: priv, msgFile: msg,
		allowedFile: []byte("lab@example.org " + string(ssh.MarshalAuthorizedKey(pub)))} {
		if err := os.WriteFile(f, data, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	signer, err := NewSSHSigner(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	ours, err := signer.Sign(bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(msgFile+".sig", ours, 0o600)
	cmd := exec.Command(keygen, "-Y", "verify", "-f", allowedFile, "-I", "lab@example.org", "-n", "git", "-s", msgFile+".sig")
	cmd.Stdin = bytes.NewReader(msg)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("ssh-keygen -Y verify refuses our signature: %v\n%s", err, out)
	}
	allowed := []sshKey{{key: pub, fp: ssh.FingerprintSHA256(pub)}}
	for _, hashalg := range []string{"sha512", "sha256"} {
		os.Remove(msgFile + ".sig")
		if out, err := exec.Command(keygen, "-Y", "sign", "-f", keyFile, "-n", "git", "-O", "hashalg="+hashalg, msgFile).CombinedOutput(); err != nil {
			t.Fatalf("ssh-keygen -Y sign: %v\n%s", err, out)
		}
		theirs, err := os.ReadFile(msgFile + ".sig")
		if err != nil {
			t.Fatal(err)
		}
		if fp, err := verifySSHSignature(allowed, msg, theirs, "git"); err != nil || fp != "SSH "+allowed[0].fp {
			t.Errorf("ssh-keygen's %s signature: %q, %v", hashalg, fp, err)
		}
		if _, err := verifySSHSignature(allowed, append(msg, 'x'), theirs, "git"); err == nil {
			t.Errorf("ssh-keygen's %s signature verified over another message", hashalg)
		}
	}
}
