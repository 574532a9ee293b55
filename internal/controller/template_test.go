package controller

import (
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/reconcile"
)

// TestMessageTemplateCannotExhaustTheController: templates a hostile
// tenant could write to hang or exhaust the shared controller are refused
// when the spec is checked (within a second each), with a message saying
// what is not allowed; ordinary templates work.
func TestMessageTemplateCannotExhaustTheController(t *testing.T) {
	long := strings.Repeat("x", 1000)
	for _, tc := range []struct {
		name, text, wantErr string
	}{
		{"range over a huge integer", `{{range 1000000000}}{{range 1000000000}}{{end}}{{end}}`, "only {{range .Experiments}}"},
		{"range over an int field", `{{range .Runs}}x{{end}}`, "only {{range .Experiments}}"},
		{"nested range", `{{range .Experiments}}{{range .Experiments}}{{end}}{{end}}`, "inside a range"},
		{"range over a variable", `{{$n := 1000000000}}{{range $n}}{{end}}`, "only {{range .Experiments}}"},
		{"range in a defined template", `{{define "a"}}{{range 100000000}}{{end}}{{end}}{{template "a"}}`, "only {{range .Experiments}}"},
		{"template called in a range", `{{define "a"}}x{{end}}{{range .Experiments}}{{template "a"}}{{end}}`, "inside a range"},
		{"huge printf width", `{{printf "%999999999d" 1}}`, "widths and precisions"},
		{"huge printf precision", `{{printf "%.99999f" 1.0}}`, "widths and precisions"},
		{"printf width from an argument", `{{printf "%*d" 999999999 1}}`, "widths and precisions"},
		{"unbounded output by recursion", `{{define "a"}}` + long + `{{template "a" .}}{{end}}{{template "a" .}}`, "longer than"},
		{"unknown field", `{{.Nope}}`, "Nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			start := time.Now()
			_, err := messageTemplate(tc.text)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tc.wantErr)
			}
			if d := time.Since(start); d > 2*time.Second {
				t.Errorf("checking took %s", d)
			}
		})
	}
	ok, err := messageTemplate(`results of {{.ShortSource}} on {{.Ref}}: {{.Succeeded}}/{{.Runs}} ({{printf "%5.1f" 99.5}}%)
{{range .Experiments}}- {{.Name}}: {{.Succeeded}} ok, {{.Failed}} failed
{{end}}`)
	if err != nil {
		t.Fatal(err)
	}
	msg, err := ok(reconcile.CommitSummary{Source: "0123456789abcdef", Ref: "refs/heads/main", Runs: 3, Succeeded: 2, Failed: 1,
		Experiments: []reconcile.ExperimentSummary{{Name: "square", Succeeded: 2, Failed: 1}}})
	if err != nil {
		t.Fatal(err)
	}
	if want := "results of 0123456789ab on refs/heads/main: 2/3 ( 99.5%)\n- square: 2 ok, 1 failed\n"; msg != want {
		t.Errorf("message %q, want %q", msg, want)
	}
}
