package attest

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sigstore/sigstore/pkg/cryptoutils"
)

func TestKeyPairRoundTripEveryType(t *testing.T) {
	for _, kt := range KeyTypes {
		t.Run(string(kt), func(t *testing.T) {
			priv, err := GenerateKey(kt)
			if err != nil {
				t.Fatal(err)
			}
			kp, err := EncodeKeyPair(priv, []byte("correct horse"))
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(kp.Private), "-----BEGIN "+pemEncryptedSigstore+"-----") {
				t.Errorf("private key PEM header: %.60s", kp.Private)
			}
			got, err := DecodePrivateKey(kp.Private, func() ([]byte, error) { return []byte("correct horse"), nil })
			if err != nil {
				t.Fatal(err)
			}
			pub, err := DecodePublicKey(kp.Public)
			if err != nil {
				t.Fatal(err)
			}
			if err := cryptoutils.EqualKeys(got.Public(), pub); err != nil {
				t.Errorf("decoded key pair does not match: %v", err)
			}
			// sigstore's own reader opens what we wrote (cosign uses the same).
			if _, err := cryptoutils.UnmarshalPEMToPrivateKey(kp.Private, cryptoutils.StaticPasswordFunc([]byte("correct horse"))); err != nil {
				t.Errorf("sigstore cryptoutils cannot read our key: %v", err)
			}
		})
	}
}

func TestWrongPassphraseIsNamed(t *testing.T) {
	priv, _ := GenerateKey(KeyECDSA)
	kp, err := EncodeKeyPair(priv, []byte("right"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecodePrivateKey(kp.Private, func() ([]byte, error) { return []byte("wrong"), nil })
	if !errors.Is(err, ErrWrongPassphrase) || !strings.Contains(err.Error(), PasswordEnv) {
		t.Fatalf("wrong passphrase error = %v", err)
	}
}

func TestDecodePlainAndLegacyPrivateKeys(t *testing.T) {
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	pkcs8, _ := x509.MarshalPKCS8PrivateKey(priv)
	sec1, _ := x509.MarshalECPrivateKey(priv)
	kp, _ := EncodeKeyPair(priv, []byte("p"))
	block, _ := pem.Decode(kp.Private)
	cosignLegacy := pem.EncodeToMemory(&pem.Block{Type: pemEncryptedCosign, Bytes: block.Bytes})
	tests := map[string][]byte{
		"PKCS8":                 pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8}),
		"SEC1":                  pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1}),
		"ENCRYPTED COSIGN (v1)": cosignLegacy,
	}
	for name, data := range tests {
		t.Run(name, func(t *testing.T) {
			got, err := DecodePrivateKey(data, func() ([]byte, error) { return []byte("p"), nil })
			if err != nil {
				t.Fatal(err)
			}
			if !got.(*ecdsa.PrivateKey).Equal(priv) {
				t.Error("decoded a different key")
			}
		})
	}
}

func TestDecodeRejectsBadKeys(t *testing.T) {
	small, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der, _ := x509.MarshalPKCS8PrivateKey(small)
	tests := map[string]struct {
		data []byte
		want string
	}{
		"not PEM":        {[]byte("hello"), "not a PEM file"},
		"public as priv": {mustPublicPEM(t), "not a private key"},
		"P-224":          {pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), "not supported"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			_, err := DecodePrivateKey(tt.data, nil)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error = %v, want %q", err, tt.want)
			}
		})
	}
}

func mustPublicPEM(t *testing.T) []byte {
	testSigner(t, KeyECDSA)
	kp, err := EncodeKeyPair(testKeys[KeyECDSA], nil)
	if err != nil {
		t.Fatal(err)
	}
	return kp.Public
}

func TestLoadSignerDecryptsOncePerProcess(t *testing.T) {
	dir := t.TempDir()
	keyFile, _ := writeKeyPair(t, dir, "k", KeyECDSA, "pw")
	t.Setenv(PasswordEnv, "pw")
	a, err := LoadSigner(context.Background(), keyFile)
	if err != nil {
		t.Fatal(err)
	}
	// With the passphrase gone, a second load must come from the cache.
	t.Setenv(PasswordEnv, "not the passphrase")
	b, err := LoadSigner(context.Background(), keyFile)
	if err != nil {
		t.Fatalf("second load decrypted again: %v", err)
	}
	if a != b {
		t.Error("second load returned a different signer")
	}
	// An edited key file is read again.
	writeKeyPair(t, dir, "k", KeyECDSA, "pw2")
	if _, err := LoadSigner(context.Background(), keyFile); !errors.Is(err, ErrWrongPassphrase) {
		t.Errorf("replaced key file: error = %v, want wrong passphrase", err)
	}
}

func TestKMSProviderNotCompiledIn(t *testing.T) {
	t.Setenv("PATH", t.TempDir()) // no sigstore-kms-* plugin anywhere
	for _, ref := range []string{"awskms:///arn:aws:kms:eu-west-1:1:key/x", "gcpkms://projects/p/locations/l/keyRings/r/cryptoKeys/k",
		"azurekms://vault.vault.azure.net/k", "hashivault://transit-key"} {
		scheme := ref[:strings.Index(ref, "://")]
		_, err := LoadSigner(context.Background(), ref)
		if err == nil || !strings.Contains(err.Error(), "KMS provider "+scheme+":// is not compiled into expsync") ||
			!strings.Contains(err.Error(), "sigstore-kms-"+scheme) {
			t.Errorf("%s: error = %v", scheme, err)
		}
	}
}

func TestKeyIDIsStable(t *testing.T) {
	s := testSigner(t, KeyEd25519)
	k := keyOf(t, s)
	if k.ID != s.KeyID() || !strings.HasPrefix(k.ID, "SHA256:") {
		t.Errorf("key ID %q vs signer %q", k.ID, s.KeyID())
	}
	if filepath.Base(k.Name) == "" {
		t.Error("key has no name")
	}
}

// TestKMSKeyThroughSigstorePlugin signs and verifies with a KMS URI through
// sigstore's KMS support: no cloud provider is compiled in, so sigstore runs
// its CLI plugin for the scheme (sigstore-kms-hashivault), here a test
// plugin built from testdata/kmsplugin with sigstore's plugin handler.
func TestKMSKeyThroughSigstorePlugin(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("the go command is needed to build the test KMS plugin")
	}
	bin := t.TempDir()
	build := exec.Command(goBin, "build", "-o", filepath.Join(bin, "sigstore-kms-hashivault"), "./testdata/kmsplugin")
	build.Env = append(os.Environ(), "GOTOOLCHAIN=local")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build test KMS plugin: %v\n%s", err, out)
	}
	priv, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	der, _ := x509.MarshalECPrivateKey(priv)
	keyFile := filepath.Join(t.TempDir(), "kms.pem")
	writeFile(t, keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}))
	t.Setenv("EXPSYNC_TEST_KMS_KEY", keyFile)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	const ref = "hashivault://expsync-test"
	signer, err := LoadSigner(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := cryptoutils.EqualKeys(signer.Public(), priv.Public()); err != nil {
		t.Fatalf("KMS signer has another public key: %v", err)
	}
	id := testIdentity(1)
	dir := writeRunFolder(t, t.TempDir(), id, testRun(t, id), signer)
	kmsKey, err := LoadVerifierKey(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := VerifyFolder(dir, FolderOptions{Keys: Verifiers{kmsKey}}); err != nil {
		t.Fatalf("verify with the KMS key: %v", err)
	}
	fileKey, _ := NewKey("pub", priv.Public())
	if _, err := VerifyFolder(dir, FolderOptions{Keys: Verifiers{fileKey}}); err != nil {
		t.Fatalf("verify with the exported public key: %v", err)
	}
}

func TestDecodePublicKeyRejectsWeakKeys(t *testing.T) {
	p224, _ := ecdsa.GenerateKey(elliptic.P224(), rand.Reader)
	der, err := x509.MarshalPKIXPublicKey(&p224.PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	_, err = DecodePublicKey(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der}))
	if err == nil || !strings.Contains(err.Error(), "P-224 is not supported") {
		t.Fatalf("P-224 public key: %v", err)
	}
	if _, err := DecodePublicKey([]byte("not pem")); err == nil {
		t.Fatal("garbage accepted as a public key")
	}
}
