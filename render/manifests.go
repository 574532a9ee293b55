package render

import (
	"encoding/json"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"
)

// Manifests are the objects of rendered runs in the order `kubectl apply`
// wants them: per run, the contract ConfigMap, then the Job that mounts it.
// Each object is a plain map with keys in a stable order, without the empty
// fields a typed object would print (creationTimestamp: null, status: {}).
func Manifests(objs []JobObjects) ([]map[string]any, error) {
	out := make([]map[string]any, 0, 2*len(objs))
	for _, o := range objs {
		for _, obj := range []runtime.Object{o.Contract, o.Job} {
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

// WriteYAML writes objects as a YAML stream ("---" before each document).
func WriteYAML(w io.Writer, objs []JobObjects) error {
	manifests, err := Manifests(objs)
	if err != nil {
		return err
	}
	for _, m := range manifests {
		data, err := yaml.Marshal(m)
		if err != nil {
			return fmt.Errorf("encode YAML: %w", err)
		}
		if _, err := fmt.Fprintf(w, "---\n%s", data); err != nil {
			return err
		}
	}
	return nil
}

// WriteJSONList writes objects as one indented v1 List, which `kubectl
// apply -f -` accepts like a stream.
func WriteJSONList(w io.Writer, objs []JobObjects) error {
	manifests, err := Manifests(objs)
	if err != nil {
		return err
	}
	items := make([]any, len(manifests))
	for i, m := range manifests {
		items[i] = m
	}
	data, err := json.MarshalIndent(map[string]any{
		"apiVersion": "v1",
		"kind":       "List",
		"items":      items,
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	_, err = w.Write(append(data, '\n'))
	return err
}
