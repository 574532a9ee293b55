package chart

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/deploy"
)

// The references of the files users write — the experiment file,
// expsync.yaml and serve's configuration — are generated from the Go types
// that read them (api/v1alpha1, internal/deploy): one row per field with
// its YAML key, type, default and the field's doc comment. A field without
// a doc comment fails the test (a struct-typed field may lean on its
// type's comment), so a field added to the types reaches the docs. Each
// reference ends with a real example file (from examples/), which other
// tests load.

// goTypes are the documented struct types of some packages, by "pkg.Name".
type goTypes struct {
	structs map[string]*ast.StructType
	docs    map[string]string
}

func loadGoTypes(t *testing.T, dirs ...string) *goTypes {
	t.Helper()
	g := &goTypes{structs: map[string]*ast.StructType{}, docs: map[string]string{}}
	for _, dir := range dirs {
		files, err := filepath.Glob(filepath.Join(repoRoot, dir, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		for _, file := range files {
			if strings.HasSuffix(file, "_test.go") {
				continue
			}
			f, err := parser.ParseFile(token.NewFileSet(), file, nil, parser.ParseComments)
			if err != nil {
				t.Fatal(err)
			}
			name := f.Name.Name
			for _, d := range f.Decls {
				gd, ok := d.(*ast.GenDecl)
				if !ok || gd.Tok != token.TYPE {
					continue
				}
				for _, spec := range gd.Specs {
					ts := spec.(*ast.TypeSpec)
					doc := ts.Doc
					if doc == nil {
						doc = gd.Doc
					}
					g.docs[name+"."+ts.Name.Name] = prose(doc)
					if st, ok := ts.Type.(*ast.StructType); ok {
						g.structs[name+"."+ts.Name.Name] = st
					}
				}
			}
		}
	}
	return g
}

// prose is a doc comment on one line.
func prose(c *ast.CommentGroup) string {
	if c == nil {
		return ""
	}
	return strings.Join(strings.Fields(c.Text()), " ")
}

// defaultIn finds the default a doc comment states: "(default X)",
// "default: X" or `default "X"`/"default 5".
var defaultIn = regexp.MustCompile(`\(default:? ([^)]*)\)|[Dd]efault: ([^;.]+)|[Dd]efault ("[^"]*"|\d[^\s;,)]*)`)

// fieldTable writes one row per YAML field below the struct pkg.name,
// depth first, and returns the fields that have no description.
func (g *goTypes) fieldTable(b *strings.Builder, pkg, name, prefix string) (undocumented []string) {
	st := g.structs[pkg+"."+name]
	for _, f := range st.Fields.List {
		key := yamlKey(f)
		if key == "-" || len(f.Names) == 0 {
			continue
		}
		path := key
		if prefix != "" {
			path = prefix + "." + key
		}
		typ, elem := g.describeType(pkg, f.Type)
		desc := prose(f.Doc)
		if desc == "" {
			desc = prose(f.Comment)
		}
		if desc == "" && elem != "" {
			desc = g.docs[pkg+"."+elem]
		}
		if desc == "" {
			undocumented = append(undocumented, fmt.Sprintf("%s.%s field %s (%s)", pkg, name, f.Names[0].Name, path))
		}
		def := ""
		if m := defaultIn.FindStringSubmatch(desc); m != nil {
			def = strings.TrimSpace(m[1] + m[2] + m[3])
		}
		fmt.Fprintf(b, "| `%s` | %s | %s | %s |\n", path, typ, cell(def), cell(desc))
		if elem != "" {
			sub := path
			if strings.HasPrefix(typ, "list") {
				sub += "[]"
			} else if strings.HasPrefix(typ, "map") {
				sub += ".*"
			}
			undocumented = append(undocumented, g.fieldTable(b, pkg, elem, sub)...)
		}
	}
	return undocumented
}

// yamlKey is the key yaml.v3 reads a field under.
func yamlKey(f *ast.Field) string {
	if f.Tag != nil {
		tag := reflect.StructTag(strings.Trim(f.Tag.Value, "`"))
		for _, k := range []string{"yaml", "json"} {
			if v, ok := tag.Lookup(k); ok {
				if name, _, _ := strings.Cut(v, ","); name != "" {
					return name
				}
			}
		}
	}
	if len(f.Names) == 0 {
		return "-"
	}
	return strings.ToLower(f.Names[0].Name)
}

// describeType names a field's type for a reader, and the struct of this
// package it holds (to be expanded), if any.
func (g *goTypes) describeType(pkg string, e ast.Expr) (string, string) {
	switch e := e.(type) {
	case *ast.StarExpr:
		return g.describeType(pkg, e.X)
	case *ast.ArrayType:
		inner, elem := g.describeType(pkg, e.Elt)
		return "list of " + inner, elem
	case *ast.MapType:
		inner, elem := g.describeType(pkg, e.Value)
		return "map of " + inner, elem
	case *ast.InterfaceType:
		return "string, number or boolean", ""
	case *ast.SelectorExpr:
		return e.Sel.Name, ""
	case *ast.Ident:
		switch e.Name {
		case "string":
			return "string", ""
		case "bool":
			return "boolean", ""
		case "int", "int32", "int64":
			return "integer", ""
		case "float64":
			return "number", ""
		case "any":
			return "string, number or boolean", ""
		case "Duration":
			return "duration (`30s`, `1h30m`)", ""
		}
		if _, ok := g.structs[pkg+"."+e.Name]; ok {
			return "object", e.Name
		}
		return e.Name, ""
	}
	return fmt.Sprintf("%T", e), ""
}

// fileReference is one generated reference: the root type and the example.
type fileReference struct {
	doc, section string
	dir, pkg     string
	root         string
	examples     []string // files of this checkout shown whole
}

var fileReferences = []fileReference{
	{"docs/reference/experiment-file.md", "experiment", "api/v1alpha1", "v1alpha1", "Experiment",
		[]string{"examples/experiments/experiments/descent/descent.yaml", "examples/experiments/templates/python.yaml"}},
	{"docs/reference/expsync-yaml.md", "expsync.yaml", "api/v1alpha1", "v1alpha1", "RepositoryConfig",
		[]string{"examples/experiments/expsync.yaml"}},
	{"docs/reference/serve-config.md", "serve", "internal/deploy", "deploy", "Config",
		[]string{"examples/serve/serve.yaml"}},
}

func TestFilesReference(t *testing.T) {
	for _, ref := range fileReferences {
		t.Run(ref.section, func(t *testing.T) {
			g := loadGoTypes(t, ref.dir)
			var b strings.Builder
			b.WriteString("| field | type | default | description |\n|---|---|---|---|\n")
			missing := g.fieldTable(&b, ref.pkg, ref.root, "")
			sort.Strings(missing)
			for _, m := range missing {
				t.Errorf("%s has no doc comment: say what it does and its default (the reference %s is generated from it)", m, ref.doc)
			}
			for _, ex := range ref.examples {
				data, err := os.ReadFile(filepath.Join(repoRoot, ex))
				if err != nil {
					t.Fatal(err)
				}
				fmt.Fprintf(&b, "\nExample: [`%s`](../../%s)\n\n```yaml\n%s```\n", ex, ex, data)
			}
			checkSection(t, filepath.Join(repoRoot, ref.doc), ref.section, b.String())
		})
	}
}

// TestServeConfigExample: the serve configuration the reference shows
// is one serve reads.
func TestServeConfigExample(t *testing.T) {
	if _, err := deploy.LoadConfig(filepath.Join(repoRoot, "examples", "serve", "serve.yaml")); err != nil {
		t.Fatal(err)
	}
}
