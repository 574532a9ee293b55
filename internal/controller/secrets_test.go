package controller

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/expsync/expsync/attest"
)

func secret(data map[string]string) *corev1.Secret {
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "lab", Name: "s", UID: "u1"}, Data: map[string][]byte{}}
	for k, v := range data {
		s.Data[k] = []byte(v)
	}
	return s
}

// TestSecretErrorsNameKeysNeverValues: every refusal names the Secret and
// its keys and says what is expected, and never repeats a value.
func TestSecretErrorsNameKeysNeverValues(t *testing.T) {
	const value = "s3cr3t-value-never-shown"
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("right-"+value))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		run  func() error
		want []string
	}{
		{"git: no known key", func() error { _, err := gitAuth(secret(map[string]string{"token": value})); return err },
			[]string{"lab/s", "username/password", "bearerToken", "identity/known_hosts", "keys token"}},
		{"git: password and token", func() error {
			_, err := gitAuth(secret(map[string]string{"password": value, "bearerToken": value}))
			return err
		}, []string{"both password and bearerToken"}},
		{"verify: no keys", func() error { _, err := verifyKeys(secret(map[string]string{"key": value})); return err },
			[]string{".asc", ".sshpub", "keys key"}},
		{"verify: not PGP", func() error { _, err := verifyKeys(secret(map[string]string{"a.asc": value})); return err },
			[]string{"a.asc", "not an armored OpenPGP public key"}},
		{"trusted: bad PEM", func() error { _, err := trustedKeys(secret(map[string]string{"x.pub": value})); return err },
			[]string{"x.pub"}},
		{"attestation: no cosign.key", func() error {
			_, err := attestationSigner(secret(map[string]string{"key": value}))
			return err
		}, []string{"no key cosign.key", "cosign generate-key-pair k8s://lab/s"}},
		{"attestation: wrong password", func() error {
			_, err := attestationSigner(secret(map[string]string{"cosign.key": string(pair.Private), "cosign.password": "wrong-" + value}))
			return err
		}, []string{"cosign.password does not open cosign.key"}},
		{"forge: no token", func() error { _, err := forgeToken(secret(map[string]string{"password": value})); return err },
			[]string{"spec.forge.secretRef", "lab/s", "no key token", "keys password"}},
		{"forge: blank token", func() error { _, err := forgeToken(secret(map[string]string{"token": " \n"})); return err },
			[]string{"no key token"}},
		{"commit key: missing", func() error { _, err := commitSigner(secret(map[string]string{"k": value})); return err },
			[]string{"git.asc", "identity"}},
		{"commit key: bad SSH", func() error {
			_, err := commitSigner(secret(map[string]string{"identity": value, "passphrase": value}))
			return err
		}, []string{"commit.signingKey", "identity"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.run()
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not say %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), value) {
				t.Errorf("error shows a secret value: %v", err)
			}
		})
	}
}

func TestAttestationSignerFromCosignSecret(t *testing.T) {
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("pw"))
	if err != nil {
		t.Fatal(err)
	}
	s := secret(map[string]string{"cosign.key": string(pair.Private), "cosign.password": "pw", "cosign.pub": string(pair.Public)})
	signer, err := attestationSigner(s)
	if err != nil {
		t.Fatal(err)
	}
	again, err := attestationSigner(s)
	if err != nil || again != signer {
		t.Errorf("a second read of the same Secret decrypted the key again (%p, %p, %v)", signer, again, err)
	}
	s.Data["cosign.password"] = []byte("other")
	if _, err := attestationSigner(s); err == nil {
		t.Error("an edited password still opened the key: the cache ignored the Secret's content")
	}
	trusted, err := trustedKeys(s)
	if err != nil || len(trusted) != 1 {
		t.Fatalf("trusted keys from cosign.pub: %v, %v", trusted, err)
	}
}

func TestGitAuthFluxKeys(t *testing.T) {
	a, err := gitAuth(secret(map[string]string{"username": "u", "password": "p"}))
	if err != nil || a.Username != "u" || a.Password != "p" {
		t.Errorf("basic auth: %+v, %v", a, err)
	}
	a, err = gitAuth(secret(map[string]string{"bearerToken": "t"}))
	if err != nil || a.BearerToken != "t" {
		t.Errorf("token: %+v, %v", a, err)
	}
	a, err = gitAuth(secret(map[string]string{"identity": "k", "known_hosts": "h"}))
	if err != nil || string(a.SSHPrivateKey) != "k" || string(a.KnownHosts) != "h" {
		t.Errorf("ssh: %+v, %v", a, err)
	}
	if got := credentialValues(a); len(got) != 1 || got[0] != "k" {
		t.Errorf("credential values to redact: %q", got)
	}
}
