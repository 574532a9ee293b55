package attest

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protojson"
)

// viaProtojson is how statements were written before appendStatementJSON,
// and the reference it must match byte for byte: protojson of Statement,
// compacted.
func viaProtojson(t testing.TB, run Run) ([]byte, error) {
	t.Helper()
	st, err := Statement(run)
	if err != nil {
		return nil, err
	}
	raw, err := protojson.Marshal(st)
	if err != nil {
		return nil, err
	}
	var out bytes.Buffer
	if err := json.Compact(&out, raw); err != nil {
		t.Fatalf("protojson wrote invalid JSON: %v", err)
	}
	return out.Bytes(), nil
}

func TestMarshalStatementMatchesProtojson(t *testing.T) {
	base := func() Run {
		run := testRun(t, testIdentity(1))
		run.Subjects = testSubjects()
		return run
	}
	cases := map[string]func(*Run){
		"typical":            func(*Run) {},
		"no commit, no spec": func(r *Run) { r.Commit, r.SpecBlob, r.ContextTree, r.Inputs = "", "", "", nil },
		"pinned image and templates": func(r *Run) {
			r.Image = "ghcr.io/lab/img@sha256:" + testImageDigest
			r.Templates = []GitFile{{Path: "experiments/_base.yaml", Blob: testSpecBlob}}
		},
		"failed, no contract, no times": func(r *Run) {
			r.Status, r.ExitCode, r.Contract = "Failed", 137, nil
			r.StartedOn, r.FinishedOn = time.Time{}, time.Time{}
		},
		"fractional times": func(r *Run) {
			r.StartedOn = time.Date(2026, 1, 2, 3, 4, 5, 120000000, time.FixedZone("x", 3600))
			r.FinishedOn = time.Date(2026, 1, 2, 3, 4, 6, 123456789, time.UTC)
		},
		"awkward strings": func(r *Run) {
			r.Experiment = "q\"b\\s\x00\x01\x1f\x7f\t\n\r\b\f é 日本 \u2028 <&>"
			r.Repository = "https://git.example/ü/<r>.git"
			r.Status = ""
		},
		"awkward numbers and nesting": func(r *Run) {
			r.Params = map[string]any{"tiny": 1e-7, "huge": 1e21, "neg": -0.5, "int": 42, "big": 1 << 53,
				"list": []any{1, "a", true, nil, map[string]any{"z": 1, "a": []any{}}}, "empty": map[string]any{}, "": "blank"}
		},
		"many subjects": func(r *Run) {
			for _, n := range []string{"outputs/b", "outputs/a/x.json", "outputs/é"} {
				r.Subjects = append(r.Subjects, Subject{Name: n, SHA256: strings.Repeat("e", 64)})
			}
		},
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			run := base()
			mutate(&run)
			want, err := viaProtojson(t, run)
			if err != nil {
				t.Fatalf("reference: %v", err)
			}
			got, err := MarshalStatement(run)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, want) {
				t.Errorf("MarshalStatement differs from protojson:\n got %s\nwant %s", got, want)
			}
		})
	}
}

func TestMarshalStatementRefusesInvalidUTF8(t *testing.T) {
	run := testRun(t, testIdentity(1))
	run.Subjects = testSubjects()
	run.Ref = "refs/heads/\xff"
	if _, err := viaProtojson(t, run); err == nil {
		t.Fatal("reference accepted invalid UTF-8; this test's premise is wrong")
	}
	_, err := MarshalStatement(run)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") || !strings.Contains(err.Error(), run.RunID) {
		t.Fatalf("want an error naming the run and UTF-8, got %v", err)
	}
}

// FuzzMarshalStatement: for any strings and parameters, the direct writer
// and protojson agree — both refuse, or both write the same bytes. other
// reaches the parts a typical run leaves empty: the context path, a
// template, a declared input, a pinned image, the builder ID, a second
// (nested) parameter; finish the finishing time.
func FuzzMarshalStatement(f *testing.F) {
	f.Add("pi", "refs/heads/main", "outputs/a.json", "seed", `{"a":[1,2.5e-9,"x"],"b":null}`, int64(1700000000), int32(5), 0, "code/x", int64(1700000001))
	f.Add("q\"\\\x00", "\xff", "a/é", "", `1e300`, int64(-62135596800), int32(999999999), 137, "", int64(0))
	f.Add("e", "r", "s", "k", `[{"z":{"y":[-0,5e-324,1.7976931348623157e308]}}]`, int64(253402300799), int32(0), -1, "\u2028<&>\x7f", int64(253402300799))
	f.Fuzz(func(t *testing.T, experiment, ref, subject, paramKey, paramJSON string, secs int64, nanos int32, exit int, other string, finish int64) {
		var param any
		if json.Unmarshal([]byte(paramJSON), &param) != nil {
			param = paramJSON
		}
		run := Run{RunID: "r", Experiment: experiment, Repository: "https://g/r.git", Ref: ref, Commit: testCommit,
			ContextPath: other, ContextTree: testCommit,
			SpecPath: "e.yaml", SpecBlob: testSpecBlob, Templates: []GitFile{{Path: other, Blob: testSpecBlob}},
			Image:     "registry.example/" + other + "@sha256:" + testImageDigest,
			Params:    map[string]any{paramKey: param, "nested": map[string]any{other: []any{param, other}}},
			Inputs:    []Input{{Name: other, URI: other, SHA256: testImageDigest}},
			Subjects:  []Subject{{Name: subject, SHA256: testImageDigest}, {Name: RunFile, SHA256: testImageDigest}},
			BuilderID: other, StartedOn: time.Unix(secs, int64(nanos)), FinishedOn: time.Unix(finish, 0),
			ExitCode: exit, Status: experiment, Contract: []byte(paramJSON)}
		want, wantErr := viaProtojson(t, run)
		got, err := MarshalStatement(run)
		if (err != nil) != (wantErr != nil) {
			t.Fatalf("MarshalStatement error %v, protojson error %v", err, wantErr)
		}
		if err == nil && !bytes.Equal(got, want) {
			t.Fatalf("MarshalStatement differs from protojson:\n got %s\nwant %s", got, want)
		}
	})
}

// BenchmarkMarshalStatementVsProtojson: the direct writer next to the
// protojson route it replaced, on the same run (`go test -run '^$' -bench
// MarshalStatementVsProtojson ./attest/`); rate-vs-raw is how many times
// faster the writer is.
func BenchmarkMarshalStatementVsProtojson(b *testing.B) {
	run := testRun(b, testIdentity(1))
	run.Subjects = testSubjects()
	sideBySide(b, func() {
		if _, err := MarshalStatement(run); err != nil {
			b.Fatal(err)
		}
	}, func() {
		if _, err := viaProtojson(b, run); err != nil {
			b.Fatal(err)
		}
	})
}
