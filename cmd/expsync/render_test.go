package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

const examplesDir = "../../examples/experiments"

// runRender runs `expsync render ARGS` through cobra, as a user would.
func runRender(t *testing.T, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	root := newRootCmd()
	var out, errb bytes.Buffer
	root.SetOut(&out)
	root.SetErr(&errb)
	root.SetArgs(append([]string{"render"}, args...))
	err := root.Execute()
	var ee *exitError
	switch {
	case err == nil:
	case errors.As(err, &ee):
		code = ee.code
		if ee.err != nil {
			errb.WriteString(ee.err.Error())
		}
	default:
		code = 2
		errb.WriteString(err.Error())
	}
	return out.String(), errb.String(), code
}

// decodeStream decodes a YAML stream of Jobs.
func decodeStream(t *testing.T, stream string) []batchv1.Job {
	t.Helper()
	dec := utilyaml.NewYAMLReader(bufio.NewReader(strings.NewReader(stream)))
	var jobs []batchv1.Job
	for {
		doc, err := dec.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		var kind struct{ Kind string }
		if err := yaml.Unmarshal(doc, &kind); err != nil {
			t.Fatal(err)
		}
		switch kind.Kind {
		case "Job":
			var j batchv1.Job
			if err := yaml.UnmarshalStrict(doc, &j); err != nil {
				t.Fatalf("Job document: %v", err)
			}
			jobs = append(jobs, j)
		default:
			t.Fatalf("unexpected document kind %q", kind.Kind)
		}
	}
	return jobs
}

func TestRenderExamplesYAML(t *testing.T) {
	stdout, stderr, code := runRender(t, examplesDir, "-n", "lab", "--runner-image", "registry.example/expsync@sha256:"+strings.Repeat("a", 64),
		"--repository", "https://git.example/lab/exps.git", "--commit", strings.Repeat("c", 40))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	jobs := decodeStream(t, stdout)
	// 3 pi seeds + 12 descent points + 2 word-frequency points.
	if len(jobs) != 17 {
		t.Fatalf("%d Jobs, want 17", len(jobs))
	}
	if !strings.Contains(stderr, "17 Job(s) from 3 experiment(s)") {
		t.Errorf("stderr %q lacks the summary", stderr)
	}
	seen := map[string]bool{}
	for _, j := range jobs {
		if seen[j.Name] {
			t.Errorf("Job name %s twice", j.Name)
		}
		seen[j.Name] = true
		if j.Namespace != "lab" || j.Annotations[render.AnnotationCommit] != strings.Repeat("c", 40) || j.Labels[render.LabelRepository] != render.RepositoryHash("https://git.example/lab/exps.git") {
			t.Errorf("Job %s: namespace %q, annotations %v, labels %v", j.Name, j.Namespace, j.Annotations, j.Labels)
		}
		if got := j.Spec.Template.Spec.InitContainers[0].Image; got != "registry.example/expsync@sha256:"+strings.Repeat("a", 64) {
			t.Errorf("Job %s: runner image %q", j.Name, got)
		}
		var c contract.Contract
		if err := json.Unmarshal([]byte(j.Spec.Template.Annotations[render.AnnotationContract]), &c); err != nil || c.RunID != j.Annotations[render.AnnotationRunID] {
			t.Errorf("Job %s: the pod template's contract is for run %q (%v)", j.Name, c.RunID, err)
		}
	}
}

func TestRenderJSONListMatchesYAML(t *testing.T) {
	yamlOut, stderr, code := runRender(t, examplesDir)
	if code != 0 {
		t.Fatalf("yaml: exit %d: %s", code, stderr)
	}
	jsonOut, stderr, code := runRender(t, examplesDir, "-o", "json")
	if code != 0 {
		t.Fatalf("json: exit %d: %s", code, stderr)
	}
	var list struct {
		APIVersion string            `json:"apiVersion"`
		Kind       string            `json:"kind"`
		Items      []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal([]byte(jsonOut), &list); err != nil {
		t.Fatal(err)
	}
	if list.APIVersion != "v1" || list.Kind != "List" || len(list.Items) != 17 {
		t.Fatalf("JSON output is %s %s with %d items, want a v1 List of 17", list.APIVersion, list.Kind, len(list.Items))
	}
	// The same objects in the same order in both formats.
	jobs := decodeStream(t, yamlOut)
	for i, raw := range list.Items {
		var got batchv1.Job
		mustUnmarshal(t, raw, &got)
		if diff := cmp.Diff(jobs[i], got); diff != "" {
			t.Errorf("item %d (-yaml +json):\n%s", i, diff)
		}
	}
}

func mustUnmarshal(t *testing.T, raw []byte, v any) {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		t.Fatal(err)
	}
}

func TestRenderRefusesBadInputAndUsage(t *testing.T) {
	bad := t.TempDir()
	writeRenderFile(t, filepath.Join(bad, "experiments", "x.yaml"), "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata:\n  name: x\nspec:\n  image: python:3.12\n  command: [python3]\n")
	host := t.TempDir()
	writeRenderFile(t, filepath.Join(host, "experiments", "h.yaml"), "apiVersion: expsync.dev/v1alpha1\nkind: Experiment\nmetadata:\n  name: h\nspec:\n  image: host\n  command: [sh]\n")
	tests := []struct {
		name     string
		args     []string
		wantCode int
		want     string
	}{
		{"unknown format", []string{examplesDir, "-o", "xml"}, 2, `-o "xml"`},
		{"empty runner image", []string{examplesDir, "--runner-image", ""}, 2, "--runner-image"},
		{"missing folder", []string{filepath.Join(bad, "nope")}, 2, "nope"},
		{"tag instead of digest", []string{bad}, 1, filepath.Join(bad, "experiments", "x.yaml") + ":6:"},
		{"host image", []string{host}, 1, filepath.Join(host, "experiments", "h.yaml") + ":6:"},
		// One bad folder among good ones prints nothing on stdout.
		{"one bad folder of two", []string{examplesDir, bad}, 1, "x.yaml:6:"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stdout, stderr, code := runRender(t, tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit %d, want %d; stderr: %s", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stderr, tt.want) {
				t.Errorf("stderr %q lacks %q", stderr, tt.want)
			}
			if stdout != "" {
				t.Errorf("stdout not empty on failure: %.200q", stdout)
			}
		})
	}
}

func TestRenderExecWithoutCobra(t *testing.T) {
	var out, errb bytes.Buffer
	o := &renderOptions{Output: "json", RunnerImage: "r@sha256:" + strings.Repeat("b", 64), Stdout: &out, Stderr: &errb}
	if err := o.Exec(context.Background(), []string{filepath.Join("..", "..", "testdata", "render", "basic", "input")}); err != nil {
		t.Fatalf("%v: %s", err, errb.String())
	}
	if !strings.Contains(out.String(), `"kind": "Job"`) || !strings.Contains(errb.String(), "1 Job(s) from 1 experiment(s)") {
		t.Errorf("stdout %.300q stderr %q", out.String(), errb.String())
	}
}

func writeRenderFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestRenderWarnsAboutAnUnpinnedRunnerImage(t *testing.T) {
	const pinned = "registry.example/expsync@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tc := range []struct {
		image string
		warn  bool
	}{
		{"registry.example/expsync:v1", true},
		{pinned, false},
	} {
		stdout, stderr, code := runRender(t, examplesDir, "--runner-image", tc.image)
		if code != 0 || stdout == "" {
			t.Fatalf("%s: exit %d, stderr %s", tc.image, code, stderr)
		}
		if got := strings.Contains(stderr, "not pinned by digest"); got != tc.warn {
			t.Errorf("%s: warning printed = %v, want %v; stderr: %q", tc.image, got, tc.warn, stderr)
		}
	}
}
