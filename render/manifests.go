package render

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Manifests are the objects of rendered runs, one Job per run. Each object
// is a plain map with keys in a stable order, without the empty fields a
// typed object would print (creationTimestamp: null, status: {}).
func Manifests(objs []JobObjects) ([]map[string]any, error) {
	out := make([]map[string]any, 0, len(objs))
	for _, o := range objs {
		for _, obj := range []runtime.Object{o.Job} {
			m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
			if err != nil {
				return nil, fmt.Errorf("convert %T: %w", obj, err)
			}
			prune(m)
			out = append(out, m)
		}
	}
	return out, nil
}

// prune drops the fields the API server fills in and a typed object cannot
// leave out.
func prune(m map[string]any) {
	if meta, ok := m["metadata"].(map[string]any); ok {
		delete(meta, "creationTimestamp")
	}
	if status, ok := m["status"].(map[string]any); ok && len(status) == 0 {
		delete(m, "status")
	}
	if spec, ok := m["spec"].(map[string]any); ok {
		if tmpl, ok := spec["template"].(map[string]any); ok {
			if meta, ok := tmpl["metadata"].(map[string]any); ok {
				delete(meta, "creationTimestamp")
			}
		}
	}
}

// ManifestWriter prints rendered objects as they come, as a YAML stream or
// as one v1 List in JSON, so printing 10,000 Jobs never holds them all.
type ManifestWriter struct {
	w     io.Writer
	json  bool
	items int
	err   error
	buf   bytes.Buffer
}

// NewYAMLWriter writes a YAML stream ("---" before each document).
func NewYAMLWriter(w io.Writer) *ManifestWriter { return &ManifestWriter{w: w} }

// NewJSONListWriter writes one indented v1 List, which `kubectl apply -f -`
// accepts like a stream; Close ends it.
func NewJSONListWriter(w io.Writer) *ManifestWriter {
	mw := &ManifestWriter{w: w, json: true}
	_, mw.err = io.WriteString(w, "{\n  \"apiVersion\": \"v1\",\n  \"items\": [")
	return mw
}

// Write prints the objects of one run (see Manifests for their order).
func (mw *ManifestWriter) Write(objs JobObjects) error {
	if mw.err != nil {
		return mw.err
	}
	if mw.json {
		return mw.writeJSON(objs)
	}
	manifests, err := Manifests([]JobObjects{objs})
	if err != nil {
		return err
	}
	for _, m := range manifests {
		data, err := yaml.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		if _, mw.err = fmt.Fprintf(mw.w, "---\n%s", data); mw.err != nil {
			return mw.err
		}
		mw.items++
	}
	return nil
}

// writeJSON encodes the typed objects directly (three times faster than
// going through maps, which matters for 10,000 Jobs) and drops the empty
// fields Manifests drops, by their exact compact encoding: a raw quote
// cannot occur inside a JSON string, so the patterns only match keys.
func (mw *ManifestWriter) writeJSON(objs JobObjects) error {
	for _, obj := range []any{objs.Job} {
		data, err := json.Marshal(obj)
		if err != nil {
			return fmt.Errorf("encode JSON: %w", err)
		}
		for _, p := range emptyFields {
			data = bytes.ReplaceAll(data, p.old, p.new)
		}
		sep := ",\n    "
		if mw.items == 0 {
			sep = "\n    "
		}
		mw.buf.Reset()
		mw.buf.WriteString(sep)
		if err := json.Indent(&mw.buf, data, "    ", "  "); err != nil {
			return fmt.Errorf("indent JSON: %w", err)
		}
		if _, mw.err = mw.w.Write(mw.buf.Bytes()); mw.err != nil {
			return mw.err
		}
		mw.items++
	}
	return nil
}

var emptyFields = []struct{ old, new []byte }{
	{[]byte(`"creationTimestamp":null,`), nil},
	{[]byte(`,"creationTimestamp":null`), nil},
	{[]byte(`{"creationTimestamp":null}`), []byte(`{}`)},
	{[]byte(`,"status":{}`), nil},
}

// Close ends a JSON List; for YAML it only reports an earlier write error.
func (mw *ManifestWriter) Close() error {
	if mw.err != nil || !mw.json {
		return mw.err
	}
	end := "\n  ],\n  \"kind\": \"List\"\n}\n"
	if mw.items == 0 {
		end = "],\n  \"kind\": \"List\"\n}\n"
	}
	_, mw.err = io.WriteString(mw.w, end)
	return mw.err
}

// WriteYAML writes objects as a YAML stream.
func WriteYAML(w io.Writer, objs []JobObjects) error {
	return writeAll(NewYAMLWriter(w), objs)
}

// WriteJSONList writes objects as one v1 List.
func WriteJSONList(w io.Writer, objs []JobObjects) error {
	return writeAll(NewJSONListWriter(w), objs)
}

func writeAll(mw *ManifestWriter, objs []JobObjects) error {
	for _, o := range objs {
		if err := mw.Write(o); err != nil {
			return err
		}
	}
	return mw.Close()
}
