package gitsource

import (
	"bytes"
	"strings"
	"testing"
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
