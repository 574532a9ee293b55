package render

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/expsync/expsync/api/v1alpha1"
)

// TestJSONListDropsOnlyEmptyFields: the JSON writer removes the empty
// creationTimestamp and status fields by their encoding; values that spell
// the same text survive untouched.
func TestJSONListDropsOnlyEmptyFields(t *testing.T) {
	tricky := `x","creationTimestamp":null,"status":{}`
	run := testRun(func(r *Run) {
		r.Meta = &v1alpha1.ObjectMeta{Name: "pi-montecarlo", Annotations: map[string]string{"note": tricky}}
		r.Contract.Command = []string{"sh", "-c", `echo '"creationTimestamp":null,'`}
	})
	objs := mustRender(t, run, testOptions())
	var out bytes.Buffer
	if err := WriteJSONList(&out, []JobObjects{objs}); err != nil {
		t.Fatal(err)
	}
	var list struct {
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(out.Bytes(), &list); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if len(list.Items) != 1 {
		t.Fatalf("%d items", len(list.Items))
	}
	var job batchv1.Job
	if err := json.Unmarshal(list.Items[0], &job); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(objs.Job, &job); diff != "" {
		t.Errorf("Job changed by the JSON writer (-rendered +written):\n%s", diff)
	}
	for _, item := range list.Items {
		s := string(item)
		if strings.Contains(strings.ReplaceAll(s, `\"`, ""), `"creationTimestamp": null`) || strings.Contains(s, `"status": {}`) {
			t.Errorf("empty field left in %s", s)
		}
	}
}
