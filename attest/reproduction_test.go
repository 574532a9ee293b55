package attest

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/tree"
)

func ptr[T any](v T) *T { return &v }

// testReproduction is a predicate for the run folder dir.
func testReproduction(dir string) Reproduction {
	return Reproduction{
		RunID:      filepath.Base(dir),
		Experiment: "pi-montecarlo",
		Verdict:    VerdictReproduced,
		Original:   RunOutcome{BuilderID: DefaultBuilderID, StartedOn: "2026-11-28T10:00:00Z", FinishedOn: "2026-11-28T10:00:03Z", Status: "Succeeded"},
		Reproduced: RunOutcome{BuilderID: DefaultBuilderID, StartedOn: "2026-12-01T09:00:00Z", FinishedOn: "2026-12-01T09:00:04Z", Status: "Succeeded",
			LogSHA256: testImageDigest},
		Status: ItemIdentical,
		Outputs: []OutputComparison{{Path: "out/estimate.json", Verdict: ItemIdentical, Required: true,
			Attested: &FileDigest{SHA256: testImageDigest, Size: 20}, Reproduced: &FileDigest{SHA256: testImageDigest, Size: 20}}},
		Metrics: []MetricComparison{{Name: "pi", Verdict: ItemWithinTolerance, Attested: ptr(3.1416), Reproduced: ptr(3.1417),
			Tolerance: &MetricTolerance{Name: "pi", Abs: 0.001}}},
		Log: ItemDiffers,
		Tolerances: Tolerances{SpecPath: "experiments/pi.yaml", SpecBlob: testSpecBlob,
			Metrics: []MetricTolerance{{Name: "pi", Abs: 0.001}}},
		Materials: Materials{ContextPath: "code/pi", ContextTree: testContextTree,
			Inputs: []MaterialInput{{Name: "data", SHA256: testImageDigest, From: "store"}}},
	}
}

// writeReproduction signs a statement about the run folder dir and writes
// it as reproductions/<name>.
func writeReproduction(t testing.TB, dir, name string, r Reproduction, signers ...*Signer) []byte {
	t.Helper()
	st := ReproductionStatementFor(readFile(t, filepath.Join(dir, EnvelopeFile)), readFile(t, filepath.Join(dir, RunFile)), r)
	env, err := SignReproduction(st, signers...)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, ReproductionsDir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, p, env)
	return env
}

func TestReproductionRoundTrip(t *testing.T) {
	dir, _ := signedFolder(t)
	s := testSigner(t, KeyECDSA)
	want := testReproduction(dir)
	env := writeReproduction(t, dir, "a.intoto.jsonl", want, s)
	v, err := VerifyReproduction(env, Verifiers{keyOf(t, s)}, VerifyOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, v.Reproduction); diff != "" {
		t.Errorf("predicate (-want +got):\n%s", diff)
	}
	if got, _ := hashRegularFile(filepath.Join(dir, RunFile)); v.RunJSONSHA256 != got {
		t.Errorf("run.json subject %s, file %s", v.RunJSONSHA256, got)
	}
	// The payload is an in-toto statement of our predicate type, its
	// subjects named as in the run folder (cosign matches blobs by them).
	var st map[string]any
	if err := json.Unmarshal(v.Payload, &st); err != nil {
		t.Fatal(err)
	}
	if st["_type"] != StatementType || st["predicateType"] != ReproductionPredicateType {
		t.Errorf("statement header %v %v", st["_type"], st["predicateType"])
	}
}

func TestReproductionRefusals(t *testing.T) {
	dir, _ := signedFolder(t)
	s := testSigner(t, KeyECDSA)
	keys := Verifiers{keyOf(t, s)}
	good := testReproduction(dir)
	st := ReproductionStatementFor(readFile(t, filepath.Join(dir, EnvelopeFile)), readFile(t, filepath.Join(dir, RunFile)), good)
	payload, err := MarshalReproduction(st)
	if err != nil {
		t.Fatal(err)
	}
	sign := func(p []byte) []byte {
		env, err := SignStatement(p, s)
		if err != nil {
			t.Fatal(err)
		}
		return env
	}
	cases := []struct {
		name string
		env  []byte
		want error
	}{
		{"other key", mustSign(t, freshSigner(t, KeyECDSA), payload), ErrSignature},
		{"payload swapped after signing", swapPayload(t, sign(payload), bytes.Replace(payload, []byte(`"differs"`), []byte(`"identical"`), 1)), ErrSignature},
		{"provenance predicate type", sign(bytes.Replace(payload, []byte(ReproductionPredicateType), []byte(PredicateType), 1)), ErrPredicateType},
		{"duplicate key", sign(bytes.Replace(payload, []byte(`"verdict":"reproduced"`), []byte(`"verdict":"differs","verdict":"identical"`), 1)), ErrReproduction},
		{"unknown verdict", sign(bytes.Replace(payload, []byte(`"verdict":"reproduced"`), []byte(`"verdict":"fine"`), 1)), ErrReproduction},
		{"unknown field", sign(bytes.Replace(payload, []byte(`"runID"`), []byte(`"note":"x","runID"`), 1)), ErrReproduction},
		{"escaping output path", sign(bytes.Replace(payload, []byte(`"out/estimate.json"`), []byte(`"../x"`), 1)), ErrReproduction},
		{"one subject", sign(bytes.Replace(payload, []byte(`{"name":"run.json"`), []byte(`{"name":"provenance.intoto.jsonl"`), 1)), ErrReproduction},
		{"negative tolerance", sign(bytes.Replace(payload, []byte(`"abs":0.001`), []byte(`"abs":-1`), 1)), ErrReproduction},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := VerifyReproduction(c.env, keys, VerifyOptions{})
			if !errors.Is(err, c.want) {
				t.Fatalf("got %v, want %v", err, c.want)
			}
		})
	}
	// A key bound to another builder may not vouch for this reproduction.
	bound := Verifiers{keyOf(t, s, "https://expsync.dev/builder/kubernetes")}
	if _, err := VerifyReproduction(sign(payload), bound, VerifyOptions{}); !errors.Is(err, ErrBuilderID) {
		t.Errorf("builder binding: got %v", err)
	}
}

// swapPayload keeps env's signatures over another payload.
func swapPayload(t *testing.T, env, payload []byte) []byte {
	var e Envelope
	if err := json.Unmarshal(env, &e); err != nil {
		t.Fatal(err)
	}
	e.Payload = base64.StdEncoding.EncodeToString(payload)
	b, _ := json.Marshal(e)
	return b
}

func TestFolderWithReproductions(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	key := keyOf(t, s)
	opts := FolderOptions{Keys: Verifiers{key}}

	t.Run("genuine statement verifies with the folder", func(t *testing.T) {
		dir, _ := signedFolder(t)
		writeReproduction(t, dir, "20261201T090004Z-a.intoto.jsonl", testReproduction(dir), s)
		r, err := VerifyFolder(dir, opts)
		if err != nil {
			t.Fatal(err)
		}
		if len(r.Reproductions) != 1 || !r.Reproductions[0].OK || r.Reproductions[0].Verdict != VerdictReproduced {
			t.Fatalf("reproductions %+v", r.Reproductions)
		}
		if statuses(r)["reproduction 20261201T090004Z-a.intoto.jsonl"] != StatusOK {
			t.Errorf("checks %+v", r.Checks)
		}
		// An envelope path inside reproductions/ verifies the folder.
		if _, err := VerifyEnvelopeFile(filepath.Join(dir, ReproductionsDir, "20261201T090004Z-a.intoto.jsonl"), opts); err != nil {
			t.Errorf("statement path: %v", err)
		}
	})
	t.Run("forged statement fails the folder, not the planner", func(t *testing.T) {
		dir, _ := signedFolder(t)
		writeReproduction(t, dir, "forged.intoto.jsonl", testReproduction(dir), freshSigner(t, KeyECDSA))
		expectFolderFailure(t, dir, opts, "reproduction forged.intoto.jsonl", "0 of 1 required trusted keys signed")
		planner := opts
		planner.SkipReproductions = true
		if _, err := VerifyFolder(dir, planner); err != nil {
			t.Errorf("the run's own attestation is intact: %v", err)
		}
	})
	t.Run("statement copied from another run", func(t *testing.T) {
		dirA, _ := signedFolder(t)
		id := testIdentity(7)
		dirC := writeRunFolder(t, t.TempDir(), id, testRun(t, id), s)
		env := writeReproduction(t, dirA, "a.intoto.jsonl", testReproduction(dirA), s)
		if err := os.MkdirAll(filepath.Join(dirC, ReproductionsDir), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dirC, ReproductionsDir, "a.intoto.jsonl"), env)
		expectFolderFailure(t, dirC, opts, "reproduction a.intoto.jsonl", "copied from another run")
	})
	t.Run("statement about a run.json that changed", func(t *testing.T) {
		dir, _ := signedFolder(t)
		r := testReproduction(dir)
		st := ReproductionStatementFor(readFile(t, filepath.Join(dir, EnvelopeFile)), []byte("{}"), r)
		env, err := SignReproduction(st, s)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(dir, ReproductionsDir), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, ReproductionsDir, "a.intoto.jsonl"), env)
		expectFolderFailure(t, dir, opts, "reproduction a.intoto.jsonl", "edited after the reproduction")
	})
	t.Run("other files in reproductions are unattested", func(t *testing.T) {
		dir, _ := signedFolder(t)
		if err := os.MkdirAll(filepath.Join(dir, ReproductionsDir, "sub"), 0o755); err != nil {
			t.Fatal(err)
		}
		writeFile(t, filepath.Join(dir, ReproductionsDir, "notes.md"), []byte("trust me"))
		writeFile(t, filepath.Join(dir, ReproductionsDir, "sub", "x.intoto.jsonl"), []byte("{}"))
		expectFolderFailure(t, dir, opts, "unattested files", "reproductions/notes.md")
		expectFolderFailure(t, dir, opts, "unattested files", "reproductions/sub/x.intoto.jsonl")
	})
}

func TestVerifyTreeReproductions(t *testing.T) {
	s := testSigner(t, KeyECDSA)
	dir, _ := signedFolder(t)
	writeReproduction(t, dir, "good.intoto.jsonl", testReproduction(dir), s)
	writeReproduction(t, dir, "forged.intoto.jsonl", testReproduction(dir), freshSigner(t, KeyEd25519))
	writeFile(t, filepath.Join(dir, ReproductionsDir, "x.txt"), []byte("x"))
	snap, err := tree.NewDir(filepath.Dir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	got, err := VerifyTreeReproductions(snap, filepath.Base(dir), FolderOptions{Keys: Verifiers{keyOf(t, s)}})
	if err != nil {
		t.Fatal(err)
	}
	summary := map[string]bool{}
	for _, f := range got {
		summary[f.Name] = f.OK
		if !f.OK && f.Reason == "" {
			t.Errorf("%s failed without a reason", f.Name)
		}
	}
	want := map[string]bool{"reproductions/good.intoto.jsonl": true, "reproductions/forged.intoto.jsonl": false, "reproductions/x.txt": false}
	if diff := cmp.Diff(want, summary); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestReproductionNames(t *testing.T) {
	for name, want := range map[string]bool{
		"reproductions/20261201T090004Z-3f9c.intoto.jsonl":            true,
		"reproductions/a.intoto.jsonl":                                true,
		"reproductions/.intoto.jsonl":                                 false,
		"reproductions/.hidden.intoto.jsonl":                          false,
		"reproductions/a b.intoto.jsonl":                              false,
		"reproductions/a.json":                                        false,
		"reproductions/sub/a.intoto.jsonl":                            false,
		"a.intoto.jsonl":                                              false,
		"reproductions/" + strings.Repeat("a", 200) + ".intoto.jsonl": false,
	} {
		if got := IsReproductionFile(name); got != want {
			t.Errorf("IsReproductionFile(%q) = %v", name, got)
		}
	}
}
