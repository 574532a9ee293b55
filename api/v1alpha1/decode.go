package v1alpha1

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/internal/yamldecode"
)

// decoder fills Go values from YAML nodes field by field (internal/yamldecode),
// so every problem is reported with its own position and all of them in one
// pass.
type decoder struct {
	file string
	// fileOf names the file of nodes that came from a template; nodes not
	// in it belong to file.
	fileOf map[*yaml.Node]string
	errs   *ErrorList
	// pos records where each field path was written.
	pos map[string]Position
	// bad records the field paths that failed to decode, so validation does
	// not report their zero values as a second, misleading problem.
	bad map[string]bool
}

var durationType = reflect.TypeOf(Duration{})

// decode fills v (addressable) from n; path names the field for messages.
func (d *decoder) decode(n *yaml.Node, v reflect.Value, path string) {
	yd := yamldecode.Decoder{
		File: d.file, FileOf: d.fileOf, Bad: d.bad,
		Errorf: func(at yamldecode.Pos, msg string) { d.errs.add(position(at), "%s", msg) },
		Full:   d.errs.full,
		Scalars: map[reflect.Type]func(*yaml.Node) (reflect.Value, error){
			durationType: decodeDuration,
		},
		MergeKeys: "YAML merge keys (<<) are not supported; share defaults with spec.template",
	}
	if d.pos != nil {
		yd.Seen = func(path string, at yamldecode.Pos) { d.pos[path] = position(at) }
	}
	yd.Decode(n, v, path)
}

func position(p yamldecode.Pos) Position {
	return Position{File: p.File, Line: p.Line, Column: p.Column}
}

// decodeDuration reads a positive duration ("30m", "1h30m").
func decodeDuration(n *yaml.Node) (reflect.Value, error) {
	if n.Kind != yaml.ScalarNode {
		return reflect.Value{}, fmt.Errorf("must be a duration such as 30m or 1h30m, got %s", describe(n))
	}
	dur, err := time.ParseDuration(n.Value)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("must be a duration such as 30m or 1h30m, got %q", n.Value)
	}
	if dur <= 0 {
		return reflect.Value{}, errors.New("must be positive, got " + n.Value)
	}
	return reflect.ValueOf(Duration{dur}), nil
}

func describe(n *yaml.Node) string             { return yamldecode.Describe(n) }
func hint(got string, allowed []string) string { return yamldecode.Hint(got, allowed) }
func yamlName(f reflect.StructField) string    { return yamldecode.FieldName(f) }
