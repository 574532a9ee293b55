package v1alpha1

import (
	"gopkg.in/yaml.v3"
)

// KindExperimentTemplate is the kind of a template file: a spec that
// experiments extend with spec.template.
const KindExperimentTemplate = "ExperimentTemplate"

// MaxTemplateDepth bounds a chain of templates extending templates.
const MaxTemplateDepth = 4

// mergeSpec merges an experiment's spec over its template's spec. The rule,
// applied recursively from spec down:
//
//   - a mapping (params, resources, nodeSelector, sweep, sweep.matrix,
//     retries, ...) merges key by key: keys only in the template are kept,
//     keys in the experiment win;
//   - env and inputs merge by name: an entry of the experiment replaces the
//     template's entry of the same name in place, new names are appended;
//   - any other list (command, args, outputs, tolerations, sweep.include,
//     sweep.exclude, retries.onExitCodes) and every scalar in the experiment
//     replaces the template's value entirely;
//   - an explicit null in the experiment removes the template's value.
//
// The merged spec is what a run's identity covers, so a change to a template
// changes the IDs of exactly the runs whose merged spec changes. Neither
// input is modified; unchanged nodes are shared.
func mergeSpec(base, over *yaml.Node, fileOf map[*yaml.Node]string) *yaml.Node {
	m := merger{fileOf: fileOf}
	return m.node(deref(base), deref(over), "spec")
}

// merger keeps the file of every node it creates equal to the file of the
// node it copied, so errors in merged specs point into the right file.
type merger struct{ fileOf map[*yaml.Node]string }

func (m merger) copyOf(n *yaml.Node) *yaml.Node {
	out := *n
	out.Content = nil
	if f, ok := m.fileOf[n]; ok {
		m.fileOf[&out] = f
	}
	return &out
}

func deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n != nil && n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

func (m merger) node(base, over *yaml.Node, path string) *yaml.Node {
	switch {
	case base == nil:
		return over
	case over == nil:
		return base
	case base.Kind == yaml.MappingNode && over.Kind == yaml.MappingNode:
		return m.mapping(base, over, path)
	case base.Kind == yaml.SequenceNode && over.Kind == yaml.SequenceNode && (path == "spec.env" || path == "spec.inputs"):
		return m.byName(base, over)
	}
	return over
}

func (m merger) mapping(base, over *yaml.Node, path string) *yaml.Node {
	out := m.copyOf(over)
	overVals := map[string]*yaml.Node{}
	for i := 0; i+1 < len(over.Content); i += 2 {
		if k := deref(over.Content[i]); k.Kind == yaml.ScalarNode {
			overVals[k.Value] = over.Content[i+1]
		}
	}
	used := map[string]bool{}
	for i := 0; i+1 < len(base.Content); i += 2 {
		k := deref(base.Content[i])
		if k.Kind != yaml.ScalarNode {
			continue
		}
		bv := base.Content[i+1]
		ov, inOver := overVals[k.Value]
		if !inOver {
			out.Content = append(out.Content, base.Content[i], bv)
			continue
		}
		used[k.Value] = true
		if isNull(deref(ov)) {
			continue
		}
		out.Content = append(out.Content, keyOf(over, k.Value), m.node(deref(bv), deref(ov), path+"."+k.Value))
	}
	for i := 0; i+1 < len(over.Content); i += 2 {
		k := deref(over.Content[i])
		if k.Kind == yaml.ScalarNode && used[k.Value] {
			continue
		}
		if k.Kind == yaml.ScalarNode && isNull(deref(over.Content[i+1])) {
			continue
		}
		out.Content = append(out.Content, over.Content[i], over.Content[i+1])
	}
	return out
}

func keyOf(m *yaml.Node, key string) *yaml.Node {
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return m.Content[i]
		}
	}
	return nil
}

// mergeByName merges lists of mappings by their "name" field.
func (m merger) byName(base, over *yaml.Node) *yaml.Node {
	out := m.copyOf(over)
	overByName := map[string]*yaml.Node{}
	for _, item := range over.Content {
		if name, ok := nameOf(item); ok {
			overByName[name] = item
		}
	}
	placed := map[*yaml.Node]bool{}
	for _, item := range base.Content {
		name, ok := nameOf(item)
		if o, replaced := overByName[name]; ok && replaced {
			out.Content = append(out.Content, o)
			placed[o] = true
			continue
		}
		out.Content = append(out.Content, item)
	}
	for _, item := range over.Content {
		if !placed[item] {
			out.Content = append(out.Content, item)
		}
	}
	return out
}

func nameOf(item *yaml.Node) (string, bool) {
	item = deref(item)
	if item.Kind != yaml.MappingNode {
		return "", false
	}
	if v := valueOf(item, "name"); v != nil && v.Kind == yaml.ScalarNode {
		return v.Value, true
	}
	return "", false
}

// valueOf returns the value of key in mapping m, or nil.
func valueOf(m *yaml.Node, key string) *yaml.Node {
	m = deref(m)
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := deref(m.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			return deref(m.Content[i+1])
		}
	}
	return nil
}

// withValue returns a copy of mapping m with key's value replaced.
func withValue(m *yaml.Node, key string, v *yaml.Node) *yaml.Node {
	out := *m
	out.Content = append([]*yaml.Node(nil), m.Content...)
	for i := 0; i+1 < len(out.Content); i += 2 {
		if k := deref(out.Content[i]); k.Kind == yaml.ScalarNode && k.Value == key {
			out.Content[i+1] = v
			return &out
		}
	}
	return &out
}

// markFile records that every node below n belongs to file.
func markFile(n *yaml.Node, file string, fileOf map[*yaml.Node]string) {
	if n == nil {
		return
	}
	if _, done := fileOf[n]; done {
		return
	}
	fileOf[n] = file
	if n.Kind == yaml.AliasNode {
		markFile(n.Alias, file, fileOf)
	}
	for _, c := range n.Content {
		markFile(c, file, fileOf)
	}
}
