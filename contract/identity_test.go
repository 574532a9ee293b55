package contract

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// goldenIdentity exercises every field, a nested param, a float, Unicode and
// characters encoding/json would HTML-escape, so the canonical form checks
// key order, number form and string escaping at once.
func goldenIdentity() Identity {
	return Identity{
		IDVersion:  IDVersion,
		Experiment: "pi-montecarlo",
		Image:      "docker.io/library/python@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",
		Command:    []string{"python", "estimate.py", "--samples", "100000", "--seed", "2", "a<b&c>"},
		Env: []EnvVar{
			{Name: "OMP_NUM_THREADS", Value: "1"},
			{Name: "API_TOKEN", SecretRef: &SecretRef{Name: "lab-tokens", Key: "api"}},
		},
		Params:      map[string]any{"seed": 2, "samples": 100000, "lr": 0.001, "name": "é", "big": 1e21, "on": true},
		ContextTree: "4b825dc642cb6eb9a060e54bf8d69288fbee4904",
		Inputs:      []IdentityInput{{Name: "data", Path: "inputs/x.csv", SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}},
		Outputs:     []string{"out/estimate.json", "out/plots/"},
		Metrics:     "out/metrics.json",
		Repeat:      1,
	}
}

func TestIdentityCanonicalGolden(t *testing.T) {
	got, err := goldenIdentity().Canonical()
	if err != nil {
		t.Fatal(err)
	}
	want := `{"command":["python","estimate.py","--samples","100000","--seed","2","a<b&c>"],` +
		`"contextTree":"4b825dc642cb6eb9a060e54bf8d69288fbee4904",` +
		`"env":[{"name":"OMP_NUM_THREADS","value":"1"},{"name":"API_TOKEN","secretRef":{"key":"api","name":"lab-tokens"}}],` +
		`"experiment":"pi-montecarlo","idVersion":1,` +
		`"image":"docker.io/library/python@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef",` +
		`"inputs":[{"name":"data","path":"inputs/x.csv","sha256":"e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"}],` +
		`"metrics":"out/metrics.json","outputs":["out/estimate.json","out/plots/"],` +
		`"params":{"big":1e+21,"lr":0.001,"name":"é","on":true,"samples":100000,"seed":2},"repeat":1}`
	if diff := cmp.Diff(want, string(got)); diff != "" {
		t.Errorf("canonical identity (-want +got):\n%s", diff)
	}
}

// TestIdentityIDGolden pins the recipe: if this hex changes, every published
// run ID moves, so either revert the change or bump IDVersion.
// The expected value is sha256 of the canonical string above, computed once
// with `printf '%s' '<canonical>' | sha256sum`.
func TestIdentityIDGolden(t *testing.T) {
	id, err := goldenIdentity().ID()
	if err != nil {
		t.Fatal(err)
	}
	const want = "fe96976ca7f8bdd3a79fbfa970529c60c6a5da4f2416255e75812317d1f8d7f4"
	if id != want {
		t.Errorf("ID() = %s, want %s", id, want)
	}
}

func TestIdentityIDIgnoresMapOrderAndNumberSpelling(t *testing.T) {
	a := goldenIdentity()
	b := goldenIdentity()
	b.Params = map[string]any{"on": true, "big": 1e21, "name": "é", "lr": 0.001, "samples": 100000.0, "seed": int64(2)}
	idA, err := a.ID()
	if err != nil {
		t.Fatal(err)
	}
	idB, err := b.ID()
	if err != nil {
		t.Fatal(err)
	}
	if idA != idB {
		t.Errorf("equal identities with different Go number types gave %s and %s", idA, idB)
	}
	b.Params["seed"] = 3
	idC, _ := b.ID()
	if idC == idA {
		t.Errorf("changing a param did not change the ID")
	}
}
