package contract

import (
	"math"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func identityVariants() []Identity {
	g := goldenIdentity()
	empty := Identity{}
	noOptional := g
	noOptional.Env, noOptional.Params, noOptional.Inputs, noOptional.Outputs, noOptional.Metrics, noOptional.Repeat = nil, nil, nil, nil, "", 0
	emptyCmd := g
	emptyCmd.Command = []string{}
	odd := g
	odd.Experiment = "tab\there \"quoted\" back\\slash \x01 \x1f \u2028 \xff\xfe é 😀 </script>"
	odd.Params = map[string]any{"é": 1, "z": math.Copysign(0, -1), "a": 1e-7, "b": 123456789012345.0, "😀": "x", "\uffff": 2, "A": math.MaxInt32, "neg": int64(-9007199254740992)}
	odd.Env = []EnvVar{{Name: "X"}, {Name: "Y", Value: "v", SecretRef: &SecretRef{}}}
	return []Identity{g, empty, noOptional, emptyCmd, odd}
}

func TestCanonicalFastPathEqualsJCS(t *testing.T) {
	for n, id := range identityVariants() {
		fast, ok := appendCanonical(nil, id)
		if !ok {
			t.Fatalf("variant %d: fast path refused", n)
		}
		slow, err := id.canonicalJCS()
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(slow), string(fast)); diff != "" {
			t.Errorf("variant %d (-jcs +fast):\n%s", n, diff)
		}
	}
	// Types the fast path does not know take the general path.
	id := goldenIdentity()
	id.Params = map[string]any{"nested": map[string]any{"b": 1, "a": []any{true}}}
	if _, ok := appendCanonical(nil, id); ok {
		t.Error("fast path accepted a nested value")
	}
	if got, err := id.Canonical(); err != nil || !contains(string(got), `"params":{"nested":{"a":[true],"b":1}}`) {
		t.Errorf("general path = %s, %v", got, err)
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// FuzzCanonical holds the fast canonical form equal to encoding/json +
// jcs.Transform for arbitrary strings and numbers.
func FuzzCanonical(f *testing.F) {
	f.Add("pi", "k", "v", 1.5, int64(3))
	f.Add("\x00\"\\\u2028\xff", "\ud7ff", "😀", math.Copysign(0, -1), int64(-1))
	f.Fuzz(func(t *testing.T, name, key, value string, num float64, n int64) {
		id := goldenIdentity()
		id.Experiment = name
		id.Command = []string{value, key}
		id.Env = []EnvVar{{Name: key, Value: value}}
		id.Params = map[string]any{key: value, key + "n": num, key + "i": n, "b" + key: true}
		fast, ok := appendCanonical(nil, id)
		slow, err := id.canonicalJCS()
		if !ok {
			return // non-finite or out-of-range numbers: general path only
		}
		if err != nil {
			t.Fatalf("fast path accepted what the general path refuses: %v", err)
		}
		if string(fast) != string(slow) {
			t.Fatalf("fast %s\n jcs %s", fast, slow)
		}
	})
}
