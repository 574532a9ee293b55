package chart

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"gopkg.in/yaml.v3"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// The reference docs are generated from what the code and the chart
// define, into marked sections of Markdown files; these tests fail when a
// section differs from what would be generated now, and
//
//	go test -run Reference -update
//
// (in hack/tools/chart) rewrites them.
var update = flag.Bool("update", false, "rewrite the generated sections of the docs")

// checkSection compares (or, with -update, replaces) the text between
// <!-- BEGIN GENERATED: name --> and <!-- END GENERATED: name --> in file.
func checkSection(t *testing.T, file, name, content string) {
	t.Helper()
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	begin := "<!-- BEGIN GENERATED: " + name + " (go test -run Reference -update in hack/tools/chart) -->\n"
	end := "<!-- END GENERATED: " + name + " -->"
	i := bytes.Index(data, []byte(begin))
	j := bytes.Index(data, []byte(end))
	if i < 0 || j < i {
		t.Fatalf("%s has no section %q: add the lines\n%s%s", file, name, begin, end)
	}
	current := string(data[i+len(begin) : j])
	if current == content {
		return
	}
	if *update {
		out := append([]byte{}, data[:i+len(begin)]...)
		out = append(out, content...)
		out = append(out, data[j:]...)
		if err := os.WriteFile(file, out, 0o644); err != nil {
			t.Fatal(err)
		}
		t.Logf("rewrote section %s of %s", name, file)
		return
	}
	t.Errorf("section %s of %s is stale: run `go test -run Reference -update` in hack/tools/chart and commit it (-generated now +in the file):\n%s",
		name, file, cmp.Diff(strings.Split(content, "\n"), strings.Split(current, "\n")))
}

// TestValuesReference: docs/helm.md's table of chart values is
// values.yaml's keys, defaults and comments.
func TestValuesReference(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(chartDir, "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	b.WriteString("| value | default | what it does |\n|---|---|---|\n")
	var walk func(prefix string, n *yaml.Node)
	walk = func(prefix string, n *yaml.Node) {
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			path := k.Value
			if prefix != "" {
				path = prefix + "." + k.Value
			}
			comment := commentText(k.HeadComment)
			if v.Kind == yaml.MappingNode && len(v.Content) > 0 {
				// A group: its comment on a row of its own, then its values.
				if comment != "" {
					fmt.Fprintf(&b, "| `%s` |  | %s |\n", path, cell(comment))
				}
				walk(path, v)
				continue
			}
			def, err := yaml.Marshal(v)
			if err != nil {
				t.Fatal(err)
			}
			fmt.Fprintf(&b, "| `%s` | `%s` | %s |\n", path, cell(strings.TrimSpace(string(def))), cell(comment))
		}
	}
	walk("", doc.Content[0])
	checkSection(t, filepath.Join(repoRoot, "docs", "helm.md"), "values", b.String())
}

// commentText turns a YAML head comment into one line of prose (the
// blank-line-separated paragraph closest to the key).
func commentText(c string) string {
	paras := strings.Split(c, "\n\n")
	last := paras[len(paras)-1]
	var words []string
	for _, line := range strings.Split(last, "\n") {
		line = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(line), "#"))
		if line != "" {
			words = append(words, line)
		}
	}
	return strings.Join(words, " ")
}

func cell(s string) string {
	s = strings.ReplaceAll(s, "|", `\|`)
	return strings.ReplaceAll(s, "\n", " ")
}

// TestCRDReference: docs/reference/experimentrepository.md lists every
// field of the ExperimentRepository CRD (config/crd/bases, generated from
// api/v1alpha1) with its type, default, constraints and description.
func TestCRDReference(t *testing.T) {
	objs := decodeFile(t, filepath.Join(repoRoot, "config", "crd", "bases", "expsync.dev_experimentrepositories.yaml"))
	if len(objs) != 1 {
		t.Fatalf("%d objects in the CRD file", len(objs))
	}
	versions, _, _ := unstructured.NestedSlice(objs[0].Object, "spec", "versions")
	var b strings.Builder
	for _, v := range versions {
		vm := v.(map[string]any)
		schema, _, _ := unstructured.NestedMap(vm, "schema", "openAPIV3Schema")
		fmt.Fprintf(&b, "### %s\n\n", vm["name"])
		for _, part := range []string{"spec", "status"} {
			sub, _, _ := unstructured.NestedMap(schema, "properties", part)
			fmt.Fprintf(&b, "#### %s\n\n| field | type | default | constraints | description |\n|---|---|---|---|---|\n", part)
			fieldRows(&b, part, sub, requiredSet(sub))
			b.WriteString("\n")
			if rules, ok := sub["x-kubernetes-validations"].([]any); ok && len(rules) > 0 {
				fmt.Fprintf(&b, "Checked by the API server on every write of `%s` (CEL):\n\n", part)
				for _, r := range rules {
					fmt.Fprintf(&b, "- %s\n", r.(map[string]any)["message"])
				}
				b.WriteString("\n")
			}
		}
	}
	ref := filepath.Join(repoRoot, "docs", "reference", "experimentrepository.md")
	checkSection(t, ref, "crd", b.String())
	checkSection(t, ref, "conditions", conditionsTable(t))
}

// conditionsTable lists the condition types and reasons api/v1alpha1
// declares (condition_types.go), with their doc comments.
func conditionsTable(t *testing.T) string {
	t.Helper()
	file := filepath.Join(repoRoot, "api", "v1alpha1", "condition_types.go")
	f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
	if err != nil {
		t.Fatal(err)
	}
	var conds, reasons strings.Builder
	conds.WriteString("| condition | while it is true |\n|---|---|\n")
	for _, d := range f.Decls {
		g, ok := d.(*ast.GenDecl)
		if !ok || g.Tok != token.CONST {
			continue
		}
		for _, spec := range g.Specs {
			vs := spec.(*ast.ValueSpec)
			if len(vs.Names) != 1 || len(vs.Values) != 1 {
				continue
			}
			lit, ok := vs.Values[0].(*ast.BasicLit)
			if !ok {
				continue
			}
			value := strings.Trim(lit.Value, `"`)
			name := vs.Names[0].Name
			switch {
			case strings.HasSuffix(name, "Condition"):
				doc := strings.Join(strings.Fields(vs.Doc.Text()), " ")
				doc = strings.TrimPrefix(doc, name+": ")
				fmt.Fprintf(&conds, "| `%s` | %s |\n", value, cell(doc))
			case strings.HasSuffix(name, "Reason") && value != "Succeeded":
				fmt.Fprintf(&reasons, "`%s`, ", value)
			}
		}
	}
	return conds.String() + "\nReasons expsync sets besides Flux's (`Succeeded`, `Failed`, `Progressing`, `ProgressingWithRetry`): " +
		strings.TrimSuffix(reasons.String(), ", ") + ".\n"
}

func requiredSet(schema map[string]any) map[string]bool {
	out := map[string]bool{}
	if req, ok := schema["required"].([]any); ok {
		for _, r := range req {
			out[r.(string)] = true
		}
	}
	return out
}

// fieldRows writes one row per property of schema, depth first.
func fieldRows(b *strings.Builder, prefix string, schema map[string]any, _ map[string]bool) {
	props, _ := schema["properties"].(map[string]any)
	required := requiredSet(schema)
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		p := props[n].(map[string]any)
		path := prefix + "." + n
		typ, _ := p["type"].(string)
		items, _ := p["items"].(map[string]any)
		if typ == "array" && items != nil {
			it, _ := items["type"].(string)
			typ = "[]" + it
		}
		var cons []string
		if required[n] {
			cons = append(cons, "required")
		}
		for _, k := range []string{"minimum", "maximum", "minLength", "maxLength", "minItems", "maxItems", "pattern", "enum", "format"} {
			if v, ok := p[k]; ok {
				j, _ := json.Marshal(v)
				cons = append(cons, k+" "+string(j))
			}
		}
		def := ""
		if v, ok := p["default"]; ok {
			j, _ := json.Marshal(v)
			def = "`" + cell(string(j)) + "`"
		}
		desc, _ := p["description"].(string)
		fmt.Fprintf(b, "| `%s` | %s | %s | %s | %s |\n", path, typ, def, cell(strings.Join(cons, ", ")), cell(strings.Join(strings.Fields(desc), " ")))
		if typ == "object" {
			fieldRows(b, path, p, nil)
		}
		if items != nil && items["type"] == "object" {
			fieldRows(b, path+"[]", items, nil)
		}
	}
}
