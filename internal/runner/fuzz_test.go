package runner

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
)

// FuzzParseMetrics: any input either parses into finite numbers that
// re-encode and parse to the same map, or is refused with an error.
func FuzzParseMetrics(f *testing.F) {
	for _, s := range []string{`{"a":1}`, `{"a":{"b":1}}`, `{"a":1e400}`, `[]`, `null`, `{"a":1}{}`, `{"a":-0.5,"b":2}`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		m, err := ParseMetrics(data)
		if err != nil {
			if m != nil {
				t.Fatalf("error %v with a non-nil map", err)
			}
			return
		}
		for k, v := range m {
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("metric %q = %v is not finite", k, v)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := ParseMetrics(again)
		if err != nil || len(m2) != len(m) {
			t.Fatalf("re-encoded metrics %s: %v", again, err)
		}
	})
}

// FuzzRedact: every occurrence of a secret left in the output overlaps a
// marker (the marker's own bytes next to log bytes may spell a short
// secret; no secret byte of the log survives).
func FuzzRedact(f *testing.F) {
	f.Add([]byte("token=abc"), "abc", "ab")
	f.Add([]byte("aaaa"), "aa", "a")
	f.Add([]byte("J\x8d"), "]\x8d", "J")
	f.Fuzz(func(t *testing.T, log []byte, s1, s2 string) {
		out := redactWhole(append([]byte(nil), log...), []string{s1, s2})
		// The stream gives the same bytes, however it is cut into chunks.
		for _, chunk := range []int{1, 2, 3, 7, len(log) + 1} {
			var got []byte
			sr := newStreamRedactor([]string{s1, s2})
			for rest := log; len(rest) > 0; {
				n := min(chunk, len(rest))
				sr.write(rest[:n], func(p []byte) { got = append(got, p...) })
				rest = rest[n:]
			}
			sr.flush(func(p []byte) { got = append(got, p...) })
			if !bytes.Equal(got, out) {
				t.Fatalf("chunks of %d: stream gives %q, whole %q", chunk, got, out)
			}
		}
		var markers [][2]int
		for from := 0; ; {
			i := bytes.Index(out[from:], []byte(redactMarker))
			if i < 0 {
				break
			}
			markers = append(markers, [2]int{from + i, from + i + len(redactMarker)})
			from += i + len(redactMarker)
		}
		for _, s := range []string{s1, s2} {
			if s == "" {
				continue
			}
			for from := 0; ; {
				i := bytes.Index(out[from:], []byte(s))
				if i < 0 {
					break
				}
				start, end := from+i, from+i+len(s)
				covered := false
				for _, m := range markers {
					if start < m[1] && m[0] < end {
						covered = true
					}
				}
				if !covered {
					t.Fatalf("secret %q survives in %q", s, out)
				}
				from = start + 1
			}
		}
	})
}

// redactWhole replaces every occurrence of every secret in b (overlapping ones
// included) with one marker per run of secret bytes. It finds all
// occurrences in the original bytes first, so no replacement can hide or
// create a match for another secret.
func redactWhole(b []byte, secrets []string) []byte {
	var mask []bool
	for _, s := range secrets {
		if s == "" {
			continue
		}
		for from := 0; from <= len(b)-len(s); {
			i := bytes.Index(b[from:], []byte(s))
			if i < 0 {
				break
			}
			if mask == nil {
				mask = make([]bool, len(b))
			}
			for k := from + i; k < from+i+len(s); k++ {
				mask[k] = true
			}
			from += i + 1
		}
	}
	if mask == nil {
		return b
	}
	out := make([]byte, 0, len(b))
	for i := 0; i < len(b); i++ {
		if !mask[i] {
			out = append(out, b[i])
			continue
		}
		out = append(out, redactMarker...)
		for i+1 < len(b) && mask[i+1] {
			i++
		}
	}
	return out
}
