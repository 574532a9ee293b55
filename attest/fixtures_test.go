package attest

import (
	"crypto"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
)

// testKeys caches one key per type for the package's tests (RSA generation
// is slow).
var testKeys = map[KeyType]crypto.Signer{}

func testSigner(t testing.TB, kt KeyType) *Signer {
	t.Helper()
	priv, ok := testKeys[kt]
	if !ok {
		var err error
		if priv, err = GenerateKey(kt); err != nil {
			t.Fatal(err)
		}
		testKeys[kt] = priv
	}
	s, err := NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func freshSigner(t testing.TB, kt KeyType) *Signer {
	t.Helper()
	priv, err := GenerateKey(kt)
	if err != nil {
		t.Fatal(err)
	}
	s, err := NewSigner(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func keyOf(t testing.TB, s *Signer, builderIDs ...string) *Key {
	t.Helper()
	k, err := NewKey("test-"+s.KeyID(), s.Public(), builderIDs...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

const (
	testContextTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
	testSpecBlob    = "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
	testCommit      = "0123456789abcdef0123456789abcdef01234567"
	testImageDigest = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// identityBuilder makes a run identity; options change one field each.
func testIdentity(seed int, mutate ...func(*contract.Identity)) contract.Identity {
	id := contract.Identity{
		IDVersion:   contract.IDVersion,
		Experiment:  "pi-montecarlo",
		Image:       contract.HostImage,
		Command:     []string{"python3", "estimate.py", "--seed", "1"},
		Params:      map[string]any{"seed": seed, "samples": 1000},
		ContextTree: testContextTree,
		Outputs:     []string{"out/estimate.json"},
		Metrics:     "out/metrics.json",
	}
	for _, m := range mutate {
		m(&id)
	}
	return id
}

// testRun is a run whose ID is its identity's ID; subjects are filled by
// writeRunFolder.
func testRun(t testing.TB, id contract.Identity) Run {
	t.Helper()
	runID, err := id.ID()
	if err != nil {
		t.Fatal(err)
	}
	return Run{
		RunID:       runID,
		Experiment:  id.Experiment,
		Repository:  "https://git.example/lab/exps.git",
		Ref:         "refs/heads/main",
		Commit:      testCommit,
		ContextPath: "code/pi",
		ContextTree: id.ContextTree,
		SpecPath:    "experiments/pi.yaml",
		SpecBlob:    testSpecBlob,
		Image:       id.Image,
		Params:      id.Params,
		Inputs:      []Input{{Name: "data", URI: "https://example.org/x.csv", SHA256: testImageDigest}},
		BuilderID:   DefaultBuilderID,
		StartedOn:   time.Date(2026, 11, 28, 10, 0, 0, 0, time.UTC),
		FinishedOn:  time.Date(2026, 11, 28, 10, 0, 3, 0, time.UTC),
		ExitCode:    0,
		Status:      "Succeeded",
		Contract:    []byte(`{"version":"expsync.dev/contract/v1","runID":"` + runID + `"}`),
	}
}

// writeRunFolder writes a results folder for run under root/<exp>/<runID>,
// with run.json carrying identity, signs it with signers and returns the
// folder and the run as signed.
func writeRunFolder(t testing.TB, root string, id contract.Identity, run Run, signers ...*Signer) string {
	t.Helper()
	dir := filepath.Join(root, run.Experiment, run.RunID)
	const estimate = `{"estimate":3.1416}` + "\n"
	sum := sha256.Sum256([]byte(estimate))
	// As expsync writes it: the log and the small output are in the
	// folder (committed); a large output is in the store only.
	record := map[string]any{"runID": run.RunID, "experiment": run.Experiment, "status": run.Status, "identity": id,
		"logCommitted": true, "outputs": []map[string]any{
			{"path": "big.bin", "sha256": storeOnlySHA256, "size": len(storeOnlyContent), "committed": false},
			{"path": "out/estimate.json", "sha256": hex.EncodeToString(sum[:]), "size": len(estimate), "committed": true}}}
	runJSON, err := json.MarshalIndent(record, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		RunFile:                     string(runJSON) + "\n",
		MetricsFile:                 `{"pi":3.1416}` + "\n",
		LogFile:                     "estimating pi\n",
		"outputs/out/estimate.json": estimate,
	}
	for name, content := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	subjects, err := HashFolder(dir)
	if err != nil {
		t.Fatal(err)
	}
	run.Subjects = append(subjects, Subject{Name: "outputs/big.bin", SHA256: storeOnlySHA256})
	env, err := SignRun(run, signers...)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, EnvelopeFile), env, 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// storeOnlyContent is the output of the fixture folders that is recorded
// as not committed (too large): a subject whose file is in the store only.
const (
	storeOnlyContent = "a large output, kept in the store\n"
	storeOnlySHA256  = "34e337bdf36160afd2b3957d80c4702ce6556ae2b0fab83fd6533cae6bfa4464"
)

// signedFolder is the common case: one run, signed by the ECDSA test key.
func signedFolder(t testing.TB) (dir string, key *Key) {
	t.Helper()
	s := testSigner(t, KeyECDSA)
	id := testIdentity(1)
	dir = writeRunFolder(t, t.TempDir(), id, testRun(t, id), s)
	return dir, keyOf(t, s)
}

func readFile(t testing.TB, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writeFile(t testing.TB, p string, b []byte) {
	t.Helper()
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
}
