// Package testkeys writes signing key pairs for tests (not used by expsync
// itself): an ECDSA P-256 key in expsync's PEM format, without a
// passphrase, and its public key.
package testkeys

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/expsync/expsync/attest"
)

// Write writes dir/name.key and dir/name.pub and returns their paths. It
// clears EXPSYNC_PASSWORD for the test, since the key has no passphrase.
func Write(t testing.TB, dir, name string) (key, pub string) {
	t.Helper()
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := attest.EncodeKeyPair(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, pub = filepath.Join(dir, name+".key"), filepath.Join(dir, name+".pub")
	if err := os.WriteFile(key, kp.Private, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, kp.Public, 0o644); err != nil {
		t.Fatal(err)
	}
	os.Setenv(attest.PasswordEnv, "")
	return key, pub
}
