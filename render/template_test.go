package render

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestTemplate(t *testing.T) {
	params := map[string]any{"seed": int64(2), "lr": 0.001, "big": 1e21, "name": "a b", "on": true, "n": 3}
	cases := []struct {
		in, want, err string
	}{
		{in: "plain", want: "plain"},
		{in: "--seed={{params.seed}}", want: "--seed=2"},
		{in: "{{ params.lr }}/{{params.big}}/{{params.on}}/{{params.n}}", want: "0.001/1e+21/true/3"},
		{in: "{{params.name}}", want: "a b"},
		{in: "awk 'BEGIN{print 1}' }}", want: "awk 'BEGIN{print 1}' }}"},
		{in: `{{"{{"}}params.seed}}`, want: "{{params.seed}}"},
		{in: "{{params.missing}}", err: `{{params.missing}}: no parameter "missing" (params and sweep define big, lr, n, name, on, seed)`},
		{in: "x {{params.seed", err: `"{{params.seed": unclosed {{; write a literal {{ as {{"{{"}}`},
		{in: "{{ .Values.x }}", err: `"{{ .Values.x }}": only {{params.NAME}} is expanded; write a literal {{ as {{"{{"}}`},
		{in: "{{params.}}", err: `"{{params.}}": only {{params.NAME}} is expanded; write a literal {{ as {{"{{"}}`},
	}
	for _, c := range cases {
		got, err := Template(c.in, params)
		if c.err != "" {
			if err == nil || err.Error() != c.err {
				t.Errorf("Template(%q) error = %v, want %s", c.in, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("Template(%q) = %q, %v; want %q", c.in, got, err, c.want)
		}
	}
	refs, err := templateRefs("{{params.a}} {{ params.b }} {{params.a}}")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"a", "b", "a"}, refs); diff != "" {
		t.Errorf("refs (-want +got):\n%s", diff)
	}
}

// FuzzTemplate: templating never panics, a string without "{{" is returned
// unchanged, and a successful expansion leaves no {{params. reference behind
// when the values themselves hold none.
func FuzzTemplate(f *testing.F) {
	for _, s := range []string{"", "plain", "{{params.a}}", "{{ params.b }}x", `{{"{{"}}`, "{{", "}}", "{{params.}}", "{{{{params.a}}}}", "\xff{{params.a}}"} {
		f.Add(s)
	}
	params := map[string]any{"a": "A", "b": int64(7), "c": 0.5, "d": false}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Template(s, params)
		if !strings.Contains(s, "{{") {
			if err != nil || got != s {
				t.Fatalf("Template(%q) = %q, %v; want it unchanged", s, got, err)
			}
			return
		}
		refs, refErr := templateRefs(s)
		if (refErr == nil) != (err == nil) {
			for _, r := range refs {
				if _, ok := params[r]; !ok {
					return // an unknown name fails Template but not templateRefs
				}
			}
			t.Fatalf("Template(%q) err %v but templateRefs err %v", s, err, refErr)
		}
	})
}
