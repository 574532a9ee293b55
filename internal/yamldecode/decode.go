// Package yamldecode fills Go values from YAML nodes field by field, so every
// problem of a file is reported with its own file:line:col and all of them in
// one pass: unknown fields (with the closest allowed name), wrong kinds,
// duplicate keys, numbers out of range. Field names come from yaml tags.
// It reads the experiment files (api/v1alpha1) and serve's configuration
// (internal/deploy); neither names a Go type in its messages.
package yamldecode

import (
	"fmt"
	"math"
	"reflect"
	"sort"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"
)

// Pos is a place in a YAML file; Line and Column count from 1.
type Pos struct {
	File         string
	Line, Column int
}

// At is the position of node n of file.
func At(file string, n *yaml.Node) Pos {
	return Pos{File: file, Line: max(n.Line, 1), Column: max(n.Column, 1)}
}

// Decoder fills Go values from YAML nodes. It knows the field names from the
// yaml tags and rejects unknown ones with a hint.
type Decoder struct {
	File string
	// FileOf names the file of nodes that came from another file (a
	// template); nodes not in it belong to File.
	FileOf map[*yaml.Node]string
	// Errorf records a problem at a position: "path: message".
	Errorf func(at Pos, msg string)
	// Full, when set, reports that Errorf would drop further problems, so
	// the decoder skips work whose result would be dropped.
	Full func() bool
	// Seen, when set, is told where each field path was written.
	Seen func(path string, at Pos)
	// Bad, when set, records the field paths that failed to decode, so
	// validation does not report their zero values as a second, misleading
	// problem.
	Bad map[string]bool
	// Scalars decode the types they name (a duration type) from a node; the
	// error's text is the problem reported.
	Scalars map[reflect.Type]func(n *yaml.Node) (reflect.Value, error)
	// MergeKeys is the message for a YAML merge key (<<), which is never
	// supported ("" for a plain one).
	MergeKeys string
}

func (d *Decoder) at(n *yaml.Node) Pos {
	if f, ok := d.FileOf[n]; ok {
		return At(f, n)
	}
	return At(d.File, n)
}

func (d *Decoder) full() bool { return d.Full != nil && d.Full() }

func (d *Decoder) errorf(n *yaml.Node, path, format string, args ...any) {
	if d.full() {
		return
	}
	if d.Bad != nil {
		d.Bad[path] = true
	}
	msg := fmt.Sprintf(format, args...)
	if path != "" {
		msg = path + ": " + msg
	}
	d.Errorf(d.at(n), msg)
}

// Decode fills v (addressable) from n; path names the field for messages
// ("" for the document).
func (d *Decoder) Decode(n *yaml.Node, v reflect.Value, path string) { d.decode(n, v, path) }

// decode fills v (addressable) from n; path names the field for messages.
func (d *Decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	for n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if d.Seen != nil {
		d.Seen(path, d.at(n))
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" && v.Kind() != reflect.Interface {
		return // an explicit null leaves the zero value (a parameter value must be one)
	}
	if scalar, ok := d.Scalars[v.Type()]; ok {
		val, err := scalar(n)
		if err != nil {
			d.errorf(n, path, "%s", err.Error())
			return
		}
		v.Set(val)
		return
	}
	switch v.Kind() {
	case reflect.Pointer:
		if v.IsNil() {
			v.Set(reflect.New(v.Type().Elem()))
		}
		d.decode(n, v.Elem(), path)
	case reflect.Struct:
		d.decodeStruct(n, v, path)
	case reflect.Slice:
		if !d.expect(n, yaml.SequenceNode, path, "a list") {
			return
		}
		s := reflect.MakeSlice(v.Type(), len(n.Content), len(n.Content))
		for i, item := range n.Content {
			d.decode(item, s.Index(i), fmt.Sprintf("%s[%d]", path, i))
		}
		v.Set(s)
	case reflect.Map:
		if !d.expect(n, yaml.MappingNode, path, "a mapping") {
			return
		}
		m := reflect.MakeMapWithSize(v.Type(), len(n.Content)/2)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, val := n.Content[i], n.Content[i+1]
			key, ok := d.key(k, path)
			if !ok {
				continue
			}
			if seen[key] {
				d.errorf(k, path, "duplicate key %q", key)
				continue
			}
			seen[key] = true
			elem := reflect.New(v.Type().Elem()).Elem()
			d.decode(val, elem, path+"."+key)
			m.SetMapIndex(reflect.ValueOf(key), elem)
		}
		v.Set(m)
	case reflect.Interface:
		d.decodeValue(n, v, path)
	case reflect.String:
		if !d.expect(n, yaml.ScalarNode, path, "a string") {
			return
		}
		v.SetString(n.Value)
	case reflect.Bool:
		var b bool
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" || n.Decode(&b) != nil {
			d.errorf(n, path, "must be true or false, got %s", Describe(n))
			return
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int32, reflect.Int64:
		var i int64
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" || n.Decode(&i) != nil {
			d.errorf(n, path, "must be an integer, got %s", Describe(n))
			return
		}
		if v.OverflowInt(i) {
			d.errorf(n, path, "%d is out of range", i)
			return
		}
		v.SetInt(i)
	case reflect.Float64:
		var f float64
		if n.Kind != yaml.ScalarNode || (n.Tag != "!!float" && n.Tag != "!!int") || n.Decode(&f) != nil {
			d.errorf(n, path, "must be a number, got %s", Describe(n))
			return
		}
		if math.IsInf(f, 0) || math.IsNaN(f) {
			d.errorf(n, path, "must be a finite number, got %s", n.Value)
			return
		}
		v.SetFloat(f)
	default:
		panic(fmt.Sprintf("decode: unsupported type %s", v.Type()))
	}
}

func (d *Decoder) expect(n *yaml.Node, kind yaml.Kind, path, what string) bool {
	if n.Kind == kind {
		return true
	}
	d.errorf(n, path, "must be %s, got %s", what, Describe(n))
	return false
}

// key returns a mapping key; keys are plain strings, never YAML merge keys.
func (d *Decoder) key(k *yaml.Node, path string) (string, bool) {
	for k.Kind == yaml.AliasNode {
		k = k.Alias
	}
	if k.Kind != yaml.ScalarNode {
		d.errorf(k, path, "keys must be strings, got %s", Describe(k))
		return "", false
	}
	if k.Tag == "!!merge" {
		msg := "YAML merge keys (<<) are not supported"
		if d.MergeKeys != "" {
			msg = d.MergeKeys
		}
		d.errorf(k, path, "%s", msg)
		return "", false
	}
	return k.Value, true
}

func (d *Decoder) decodeStruct(n *yaml.Node, v reflect.Value, path string) {
	if !d.expect(n, yaml.MappingNode, path, "a mapping") {
		return
	}
	fields := fieldsOf(v.Type())
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := n.Content[i], n.Content[i+1]
		key, ok := d.key(k, path)
		if !ok {
			continue
		}
		idx, known := fields.index[key]
		if !known && d.full() {
			continue
		}
		if !known {
			d.errorf(k, path, "unknown field %q%s", key, Hint(key, fields.names))
			continue
		}
		if seen[key] {
			d.errorf(k, path, "field %q is set twice", key)
			continue
		}
		seen[key] = true
		d.decode(val, v.Field(idx), join(path, key))
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// maxSafeInt is the largest integer a JSON number (an IEEE double) holds
// exactly; params beyond it would change value on their way into a run ID.
const maxSafeInt = 1<<53 - 1

// decodeValue reads a parameter value: a string, a number or a boolean.
func (d *Decoder) decodeValue(n *yaml.Node, v reflect.Value, path string) {
	if n.Kind != yaml.ScalarNode {
		d.errorf(n, path, "must be a string, number or boolean, got %s", Describe(n))
		return
	}
	switch n.Tag {
	case "!!str":
		v.Set(reflect.ValueOf(n.Value))
	case "!!bool":
		var b bool
		if n.Decode(&b) != nil {
			d.errorf(n, path, "invalid boolean %q", n.Value)
			return
		}
		v.Set(reflect.ValueOf(b))
	case "!!int":
		var i int64
		if n.Decode(&i) != nil || i > maxSafeInt || i < -maxSafeInt {
			d.errorf(n, path, "integer %s is outside ±2^53 and would lose precision; quote it to make it a string", n.Value)
			return
		}
		v.Set(reflect.ValueOf(i))
	case "!!float":
		var f float64
		if n.Decode(&f) != nil || math.IsInf(f, 0) || math.IsNaN(f) {
			d.errorf(n, path, "number %s is not finite; quote it to make it a string", n.Value)
			return
		}
		v.Set(reflect.ValueOf(f))
	default:
		d.errorf(n, path, "must be a string, number or boolean, got %s", Describe(n))
	}
}

// Describe names what a node holds, for messages ("a list", "str \"x\"").
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "null"
		}
		v := n.Value
		if len(v) > 40 {
			v = v[:40] + "…"
		}
		return fmt.Sprintf("%s %q", strings.TrimPrefix(n.Tag, "!!"), v)
	}
	return "an alias"
}

// structFields maps YAML field names to struct field indexes.
type structFields struct {
	index map[string]int
	names []string
}

var fieldCache sync.Map // reflect.Type → structFields

func fieldsOf(t reflect.Type) structFields {
	if f, ok := fieldCache.Load(t); ok {
		return f.(structFields)
	}
	f := structFields{index: map[string]int{}}
	for i := 0; i < t.NumField(); i++ {
		name := FieldName(t.Field(i))
		if name == "" || name == "-" {
			continue
		}
		f.index[name] = i
		f.names = append(f.names, name)
	}
	sort.Strings(f.names)
	fieldCache.Store(t, f)
	return f
}

// FieldName is a struct field's YAML name (its yaml tag's first part).
func FieldName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}

// Hint suggests the closest allowed name (edit distance ≤ 2, or ≤ a third of
// the word), else lists the allowed names.
func Hint(got string, allowed []string) string {
	best, bestDist := "", math.MaxInt
	for _, a := range allowed {
		if d := editDistance(strings.ToLower(got), strings.ToLower(a)); d < bestDist {
			best, bestDist = a, d
		}
	}
	if best != "" && (bestDist <= 2 || bestDist <= len(got)/3) {
		return fmt.Sprintf("; did you mean %q?", best)
	}
	return "; allowed: " + strings.Join(allowed, ", ")
}

// editDistance is the Levenshtein distance of a and b (by bytes; names are ASCII).
func editDistance(a, b string) int {
	if len(a) > 64 || len(b) > 64 {
		return math.MaxInt // a long unknown key is nobody's typo
	}
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
