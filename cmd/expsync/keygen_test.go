package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/expsync/expsync/attest"
)

func TestKeygenWritesKeysThatSignAndVerify(t *testing.T) {
	for _, kt := range []string{"ecdsa", "ed25519", "rsa"} {
		t.Run(kt, func(t *testing.T) {
			prefix := filepath.Join(t.TempDir(), "lab")
			var out bytes.Buffer
			o := &keygenOptions{KeyPrefix: prefix, Type: kt, Passphrase: func() ([]byte, error) { return []byte("pw"), nil }}
			if err := o.Exec(&out, &bytes.Buffer{}); err != nil {
				t.Fatal(err)
			}
			info, err := os.Stat(prefix + ".key")
			if err != nil {
				t.Fatal(err)
			}
			if info.Mode().Perm() != 0o600 {
				t.Errorf("private key mode %v, want 0600", info.Mode().Perm())
			}
			if !strings.Contains(out.String(), "Key ID SHA256:") {
				t.Errorf("keygen output: %s", out.String())
			}
			t.Setenv(attest.PasswordEnv, "pw")
			s, err := attest.LoadSigner(context.Background(), prefix+".key")
			if err != nil {
				t.Fatal(err)
			}
			k, err := attest.LoadVerifierKey(context.Background(), prefix+".pub")
			if err != nil {
				t.Fatal(err)
			}
			env, err := s.Sign([]byte(`{}`))
			if err != nil {
				t.Fatal(err)
			}
			// The signature verifies; the empty statement is then refused,
			// which shows the payload was reached only after the signature.
			if _, err := attest.VerifyEnvelope(env, attest.Verifiers{k}, attest.VerifyOptions{}); !errors.Is(err, attest.ErrStatement) {
				t.Errorf("verify: %v, want a statement error after a good signature", err)
			}
		})
	}
}

func TestKeygenRefusesToOverwriteAndBadType(t *testing.T) {
	prefix := filepath.Join(t.TempDir(), "lab")
	pass := func() ([]byte, error) { return nil, nil }
	var warn bytes.Buffer
	if err := (&keygenOptions{KeyPrefix: prefix, Type: "ecdsa", Passphrase: pass}).Exec(&bytes.Buffer{}, &warn); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(warn.String(), "empty passphrase") {
		t.Errorf("no warning for an empty passphrase: %q", warn.String())
	}
	before, _ := os.ReadFile(prefix + ".key")
	for name, o := range map[string]*keygenOptions{
		"exists":   {KeyPrefix: prefix, Type: "ecdsa", Passphrase: pass},
		"bad type": {KeyPrefix: filepath.Join(t.TempDir(), "x"), Type: "dsa", Passphrase: pass},
	} {
		var ee *exitError
		if err := o.Exec(&bytes.Buffer{}, &bytes.Buffer{}); !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("%s: error %v, want exit 2", name, err)
		}
	}
	after, _ := os.ReadFile(prefix + ".key")
	if !bytes.Equal(before, after) {
		t.Error("existing key was overwritten")
	}
	if err := (&keygenOptions{KeyPrefix: prefix, Type: "ed25519", Passphrase: pass, Force: true}).Exec(&bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatalf("--force: %v", err)
	}
}

// TestCosignKeyVerifiesThroughCLI: a key pair from `cosign generate-key-pair`
// signs a results folder in expsync, and `expsync verify --key cosign.pub`
// accepts it.
func TestCosignKeyVerifiesThroughCLI(t *testing.T) {
	cosign := findCosign(t)
	work := t.TempDir()
	cmd := exec.Command(cosign, "generate-key-pair", "--output-key-prefix", "cosign")
	cmd.Dir = work
	cmd.Env = append(os.Environ(), "COSIGN_PASSWORD=from-cosign")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	t.Setenv(attest.PasswordEnv, "from-cosign")
	signer, err := attest.LoadSigner(context.Background(), filepath.Join(work, "cosign.key"))
	if err != nil {
		t.Fatal(err)
	}
	repo := experimentRepo(t, "add pi", "print(3.14)\n")
	dir := writeSignedRun(t, t.TempDir(), runFromRepo(t, repo, 1), signer)
	expectExit(t, verifyOptions{Paths: []string{dir}, Keys: []string{filepath.Join(work, "cosign.pub")}, Repo: repo.dir, RequireAll: true}, 0,
		"1 verified, 0 failed")
}

// findCosign finds the cosign CLI from hack/tools/build-cosign.sh; without
// it the test skips, except on CI, whose .ci/run builds it.
func findCosign(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("EXPSYNC_COSIGN"); p != "" {
		return p
	}
	if home, err := os.UserHomeDir(); err == nil {
		p := filepath.Join(home, ".cache", "expsync", "tools", "cosign")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("cosign not found on CI: .ci/run must run hack/tools/build-cosign.sh first")
	}
	t.Skip("cosign not built: run `hack/tools/build-cosign.sh ~/.cache/expsync/tools` (about 4 minutes)")
	return ""
}
