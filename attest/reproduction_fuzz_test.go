package attest

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"testing"
)

// FuzzParseReproduction: no input panics; an accepted statement passes its
// own checks again after a round trip, and white space never changes the
// reading.
func FuzzParseReproduction(f *testing.F) {
	dir := filepath.Join(f.TempDir(), "pi-montecarlo", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	st := ReproductionStatementFor([]byte("envelope"), []byte("run.json"), testReproduction(dir))
	payload, err := MarshalReproduction(st)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(payload)
	f.Add(bytes.Replace(payload, []byte(`"verdict":"reproduced"`), []byte(`"verdict":"x","verdict":"identical"`), 1))
	f.Add([]byte(`{"_type":"https://in-toto.io/Statement/v1","predicateType":"https://expsync.dev/reproduction/v1","subject":[],"predicate":{}}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := ParseReproduction(data)
		var compact bytes.Buffer
		if json.Compact(&compact, data) == nil {
			_, cerr := ParseReproduction(compact.Bytes())
			if (err == nil) != (cerr == nil) {
				t.Fatalf("white space changed the reading: %v vs %v", err, cerr)
			}
		}
		if err != nil {
			return
		}
		again, err := MarshalReproduction(*s)
		if err != nil {
			t.Fatalf("accepted a statement its own writer refuses: %v", err)
		}
		s2, err := ParseReproduction(again)
		if err != nil {
			t.Fatalf("round trip refused: %v", err)
		}
		if s2.RunID != s.RunID || s2.Verdict != s.Verdict || s2.RunJSONSHA256 != s.RunJSONSHA256 || s2.EnvelopeSHA256 != s.EnvelopeSHA256 {
			t.Fatalf("round trip changed the statement: %+v vs %+v", s2, s)
		}
	})
}
