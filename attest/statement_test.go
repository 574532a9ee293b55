package attest

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func testSubjects() []Subject {
	return []Subject{
		{Name: RunFile, SHA256: strings.Repeat("a", 64)},
		{Name: MetricsFile, SHA256: strings.Repeat("b", 64)},
		{Name: LogFile, SHA256: strings.Repeat("c", 64)},
		{Name: "outputs/out/estimate.json", SHA256: strings.Repeat("d", 64)},
	}
}

// TestStatementShape decodes the statement with encoding/json (not the
// in-toto types that built it) and checks every field a verifier reads.
func TestStatementShape(t *testing.T) {
	run := testRun(t, testIdentity(1))
	run.Image = "docker.io/library/python@sha256:" + testImageDigest
	run.Templates = []GitFile{{Path: "templates/cmd.tmpl", Blob: testSpecBlob}}
	run.Subjects = testSubjects()
	raw, err := MarshalStatement(run)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]any
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatal(err)
	}
	pred := got["predicate"].(map[string]any)
	def := pred["buildDefinition"].(map[string]any)
	details := pred["runDetails"].(map[string]any)
	meta := details["metadata"].(map[string]any)

	checks := []struct {
		name string
		got  any
		want any
	}{
		{"_type", got["_type"], "https://in-toto.io/Statement/v1"},
		{"predicateType", got["predicateType"], "https://slsa.dev/provenance/v1"},
		{"subject names sorted", subjectNames(got["subject"]), []any{LogFile, MetricsFile, "outputs/out/estimate.json", RunFile}},
		{"buildType", def["buildType"], BuildType},
		{"externalParameters", def["externalParameters"], map[string]any{
			"repository": "https://git.example/lab/exps.git", "ref": "refs/heads/main",
			"experimentPath": "experiments/pi.yaml", "experiment": "pi-montecarlo",
			"params": map[string]any{"seed": 1.0, "samples": 1000.0},
		}},
		{"resolvedDependencies", def["resolvedDependencies"], []any{
			map[string]any{"uri": "git+https://git.example/lab/exps.git@refs/heads/main", "digest": map[string]any{"gitCommit": testCommit}},
			map[string]any{"name": "context:code/pi", "uri": "git+https://git.example/lab/exps.git@refs/heads/main", "digest": map[string]any{"gitTree": testContextTree}},
			map[string]any{"name": "experiments/pi.yaml", "uri": "git+https://git.example/lab/exps.git@refs/heads/main", "digest": map[string]any{"gitBlob": testSpecBlob}},
			map[string]any{"name": "templates/cmd.tmpl", "uri": "git+https://git.example/lab/exps.git@refs/heads/main", "digest": map[string]any{"gitBlob": testSpecBlob}},
			map[string]any{"name": "image", "uri": "docker.io/library/python@sha256:" + testImageDigest, "digest": map[string]any{"sha256": testImageDigest}},
			map[string]any{"name": "inputs/data", "uri": "https://example.org/x.csv", "digest": map[string]any{"sha256": testImageDigest}},
		}},
		{"builder.id", details["builder"], map[string]any{"id": DefaultBuilderID}},
		{"invocationId", meta["invocationId"], run.RunID},
		{"startedOn", meta["startedOn"], "2026-11-28T10:00:00Z"},
		{"finishedOn", meta["finishedOn"], "2026-11-28T10:00:03Z"},
		{"result byproduct", details["byproducts"].([]any)[0], map[string]any{
			"name": "result", "annotations": map[string]any{"status": "Succeeded", "exitCode": 0.0},
		}},
		{"contract byproduct name", details["byproducts"].([]any)[1].(map[string]any)["name"], ContractByproduct},
	}
	for _, c := range checks {
		if diff := cmp.Diff(c.want, c.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", c.name, diff)
		}
	}
}

func subjectNames(v any) []any {
	var out []any
	for _, s := range v.([]any) {
		out = append(out, s.(map[string]any)["name"])
	}
	return out
}

func TestStatementIsDeterministic(t *testing.T) {
	run := testRun(t, testIdentity(1))
	run.Subjects = testSubjects()
	a, err := MarshalStatement(run)
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 20; i++ {
		b, err := MarshalStatement(run)
		if err != nil {
			t.Fatal(err)
		}
		if string(a) != string(b) {
			t.Fatalf("statement bytes differ between two encodings:\n%s\n%s", a, b)
		}
	}
}

func TestStatementOfFailedRunKeepsSubjectsAndExitStatus(t *testing.T) {
	run := testRun(t, testIdentity(1))
	run.Status, run.ExitCode = "Failed", 3
	run.Subjects = testSubjects()[:3] // no outputs: run.json, metrics.json, log
	raw, err := MarshalStatement(run)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ParseStatement(raw)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Subjects) != 3 {
		t.Errorf("failed run has %d subjects, want 3", len(v.Subjects))
	}
	_, prov, err := v.InToto()
	if err != nil {
		t.Fatal(err)
	}
	ann := prov.GetRunDetails().GetByproducts()[0].GetAnnotations().AsMap()
	if diff := cmp.Diff(map[string]any{"status": "Failed", "exitCode": 3.0}, ann); diff != "" {
		t.Errorf("result byproduct (-want +got):\n%s", diff)
	}
}

func TestStatementRejectsBadRuns(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*Run)
		want   string
	}{
		{"no subjects", func(r *Run) { r.Subjects = nil }, "no subjects"},
		{"no run ID", func(r *Run) { r.RunID = "" }, "no ID"},
		{"bad digest", func(r *Run) { r.Subjects[0].SHA256 = "abc" }, "not 64 lowercase hex"},
		{"absolute subject", func(r *Run) { r.Subjects[0].Name = "/etc/passwd" }, "relative"},
		{"escaping subject", func(r *Run) { r.Subjects[0].Name = "outputs/../../x" }, "'..'"},
		{"duplicate subject", func(r *Run) { r.Subjects[1].Name = r.Subjects[0].Name }, "listed twice"},
		{"envelope as subject", func(r *Run) { r.Subjects[0].Name = EnvelopeFile }, "its own subject"},
		{"bad input digest", func(r *Run) { r.Inputs[0].SHA256 = "XYZ" }, "input \"data\""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			run := testRun(t, testIdentity(1))
			run.Subjects = testSubjects()
			tt.mutate(&run)
			_, err := MarshalStatement(run)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("MarshalStatement error = %v, want it to mention %q", err, tt.want)
			}
		})
	}
}

func TestMarshalStatementRefusesInvalidUTF8(t *testing.T) {
	run := testRun(t, testIdentity(1))
	run.Subjects = testSubjects()
	run.Ref = "refs/heads/\xff"
	_, err := MarshalStatement(run)
	if err == nil || !strings.Contains(err.Error(), "UTF-8") || !strings.Contains(err.Error(), run.RunID) {
		t.Fatalf("want an error naming the run and UTF-8, got %v", err)
	}
}
