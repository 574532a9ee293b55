package attest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// cosignPath finds the cosign CLI built by hack/tools/build-cosign.sh
// ($EXPSYNC_COSIGN, then ~/.cache/expsync/tools/cosign, then PATH). Without
// it the interop tests skip, except on CI, whose .ci/run builds it.
func cosignPath(t *testing.T) string {
	t.Helper()
	candidates := []string{os.Getenv("EXPSYNC_COSIGN")}
	if home, err := os.UserHomeDir(); err == nil {
		candidates = append(candidates, filepath.Join(home, ".cache", "expsync", "tools", "cosign"))
	}
	for _, c := range candidates {
		if c == "" {
			continue
		}
		if info, err := os.Stat(c); err == nil && info.Mode()&0o111 != 0 {
			return c
		}
	}
	if p, err := exec.LookPath("cosign"); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatal("cosign not found on CI: .ci/run must run hack/tools/build-cosign.sh first")
	}
	t.Skip("cosign not built: run `hack/tools/build-cosign.sh ~/.cache/expsync/tools` (about 4 minutes) to run the interop tests")
	return ""
}

// runCosign runs cosign offline. SIGSTORE_REKOR_PUBLIC_KEY names a local key
// so cosign does not try to fetch its TUF trusted root from the network (it
// is not used: the tests verify with a key and --insecure-ignore-tlog).
func runCosign(t *testing.T, dir string, env []string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, cosignPath(t), args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "SIGSTORE_REKOR_PUBLIC_KEY="+offlineRekorKey(t, dir), "TUF_ROOT="+filepath.Join(dir, ".sigstore"))
	cmd.Env = append(cmd.Env, env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if strings.Contains(strings.ToLower(out.String()), "tuf") {
		t.Fatalf("cosign tried to reach its TUF repository; the test must stay offline:\n%s", out.String())
	}
	return out.String(), err
}

func offlineRekorKey(t *testing.T, dir string) string {
	t.Helper()
	testSigner(t, KeyECDSA) // fills testKeys
	p := filepath.Join(dir, "unused-rekor.pub")
	if _, err := os.Stat(p); err == nil {
		return p
	}
	kp, err := EncodeKeyPair(testKeys[KeyECDSA], nil)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, kp.Public)
	return p
}

func writeKeyPair(t *testing.T, dir, prefix string, kt KeyType, passphrase string) (keyFile, pubFile string) {
	t.Helper()
	priv, err := GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := EncodeKeyPair(priv, []byte(passphrase))
	if err != nil {
		t.Fatal(err)
	}
	keyFile, pubFile = filepath.Join(dir, prefix+".key"), filepath.Join(dir, prefix+".pub")
	writeFile(t, keyFile, kp.Private)
	writeFile(t, pubFile, kp.Public)
	return keyFile, pubFile
}

// TestCosignVerifiesOurEnvelope: cosign verify-blob-attestation accepts the
// envelope expsync writes for a results folder, for a subject's file, and
// rejects it for a file whose byte was flipped.
func TestCosignVerifiesOurEnvelope(t *testing.T) {
	for _, kt := range []KeyType{KeyECDSA, KeyRSA, KeyEd25519} {
		t.Run(string(kt), func(t *testing.T) {
			work := t.TempDir()
			keyFile, pubFile := writeKeyPair(t, work, "expsync", kt, "s3cret")
			t.Setenv(PasswordEnv, "s3cret")
			signer, err := LoadSigner(context.Background(), keyFile)
			if err != nil {
				t.Fatal(err)
			}
			id := testIdentity(1)
			dir := writeRunFolder(t, work, id, testRun(t, id), signer)
			envelope := filepath.Join(dir, EnvelopeFile)
			blob := filepath.Join(dir, "outputs", "out", "estimate.json")
			out, err := runCosign(t, work, nil, "verify-blob-attestation", "--key", pubFile, "--type", "slsaprovenance1",
				"--insecure-ignore-tlog", "--signature", envelope, blob)
			if err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("cosign rejected our envelope: %v\n%s", err, out)
			}

			flipped := filepath.Join(work, "flipped.json")
			b := readFile(t, blob)
			b[0] ^= 1
			writeFile(t, flipped, b)
			out, err = runCosign(t, work, nil, "verify-blob-attestation", "--key", pubFile, "--type", "slsaprovenance1",
				"--insecure-ignore-tlog", "--signature", envelope, flipped)
			if err == nil {
				t.Fatalf("cosign accepted a flipped blob:\n%s", out)
			}
		})
	}
}

// TestCosignKeyPairSignsWhatWeVerify: a key from `cosign generate-key-pair`
// loads in expsync (cosign's encrypted format), signs a results folder, and
// the folder verifies with the cosign public key.
func TestCosignKeyPairSignsWhatWeVerify(t *testing.T) {
	work := t.TempDir()
	out, err := runCosign(t, work, []string{"COSIGN_PASSWORD=cosign-pass"}, "generate-key-pair", "--output-key-prefix", "lab")
	if err != nil {
		t.Fatalf("cosign generate-key-pair: %v\n%s", err, out)
	}
	t.Setenv(PasswordEnv, "cosign-pass")
	signer, err := LoadSigner(context.Background(), filepath.Join(work, "lab.key"))
	if err != nil {
		t.Fatalf("load cosign key: %v", err)
	}
	key, err := LoadVerifierKey(context.Background(), filepath.Join(work, "lab.pub"))
	if err != nil {
		t.Fatal(err)
	}
	id := testIdentity(1)
	dir := writeRunFolder(t, work, id, testRun(t, id), signer)
	if _, err := VerifyFolder(dir, FolderOptions{Keys: Verifiers{key}, RequireAll: true, Store: storeWith(t, []byte(storeOnlyContent))}); err != nil {
		t.Fatal(err)
	}
}

// TestOurKeyPairWorksInCosign: cosign opens a key written by EncodeKeyPair
// (what `expsync keygen` writes) with the passphrase, derives the same public
// key, and signs a blob that verifies with our public key.
func TestOurKeyPairWorksInCosign(t *testing.T) {
	for _, kt := range []KeyType{KeyECDSA, KeyEd25519, KeyRSA} {
		t.Run(string(kt), func(t *testing.T) {
			work := t.TempDir()
			keyFile, pubFile := writeKeyPair(t, work, "ours", kt, "pw")
			env := []string{"COSIGN_PASSWORD=pw"}
			out, err := runCosign(t, work, env, "public-key", "--key", keyFile)
			if err != nil {
				t.Fatalf("cosign public-key: %v\n%s", err, out)
			}
			if !strings.Contains(out, strings.TrimSpace(string(readFile(t, pubFile)))) {
				t.Fatalf("cosign derived another public key:\n%s\nwant\n%s", out, readFile(t, pubFile))
			}
			if kt == KeyEd25519 {
				// cosign v2.6.5 sign-blob panics on any Ed25519 key ("crypto:
				// requested hash function #0 is unavailable"), its own too;
				// the key opening above is what can be checked.
				return
			}
			blob := filepath.Join(work, "blob")
			writeFile(t, blob, []byte("hello"))
			if out, err := runCosign(t, work, env, "sign-blob", "--key", keyFile, "--tlog-upload=false", "--yes",
				"--output-signature", "blob.sig", blob); err != nil {
				t.Fatalf("cosign sign-blob with our key: %v\n%s", err, out)
			}
			out, err = runCosign(t, work, nil, "verify-blob", "--key", pubFile, "--signature", "blob.sig", "--insecure-ignore-tlog", blob)
			if err != nil || !strings.Contains(out, "Verified OK") {
				t.Fatalf("cosign verify-blob: %v\n%s", err, out)
			}
		})
	}
}
