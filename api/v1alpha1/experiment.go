package v1alpha1

import (
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/tree"
)

// loadFile loads every Experiment document of one file.
func (l *loader) loadFile(path string) ([]*Loaded, error) {
	before := len(l.errs)
	docs, blob, _, err := l.readYAML(path)
	if err != nil {
		return nil, err
	}
	if len(l.errs) == before && allSpecs(docs) {
		l.specFiles[path] = true
	}
	var out []*Loaded
	for _, doc := range docs {
		if e := l.loadDocument(path, blob, doc); e != nil {
			out = append(out, e)
		}
	}
	return out, nil
}

// allSpecs reports whether a file read without error holds documents, all
// of them expsync specs by apiVersion and kind: only such a file is left out
// of context trees (Repository.SpecFiles).
func allSpecs(docs []yamlDoc) bool {
	for _, d := range docs {
		if d.node == nil || d.node.Kind != yaml.MappingNode {
			return false
		}
		v, k := valueOf(d.node, "apiVersion"), valueOf(d.node, "kind")
		if v == nil || v.Value != APIVersion || k == nil || (k.Value != KindExperiment && k.Value != KindExperimentTemplate) {
			return false
		}
	}
	return len(docs) > 0
}

// header checks apiVersion and kind and returns the kind.
func (l *loader) header(file string, root *yaml.Node, allowed ...string) (string, bool) {
	if root.Kind != yaml.MappingNode {
		l.errs.add(pos(file, root), "a document must be a mapping with apiVersion, kind, metadata and spec, got %s", describe(root))
		return "", false
	}
	ok := true
	switch v := valueOf(root, "apiVersion"); {
	case v == nil && valueOf(root, "kind") == nil:
		// Likely a data or config file beside the code (hparams.yaml,
		// environment.yml): say how to keep it out of the experiments.
		l.errs.add(pos(file, root), "apiVersion: missing; set it to %q, or, if %s is not an experiment file, list it under ignore: in %s (for example ignore: [%q])",
			APIVersion, file, ConfigFile, file)
		ok = false
	case v == nil:
		l.errs.add(pos(file, root), "apiVersion: missing; set it to %q", APIVersion)
		ok = false
	case v.Value != APIVersion:
		l.errs.add(pos(file, v), "apiVersion: must be %q, got %q", APIVersion, v.Value)
		ok = false
	}
	k := valueOf(root, "kind")
	if k == nil {
		l.errs.add(pos(file, root), "kind: missing; must be one of %s", strings.Join(allowed, ", "))
		return "", false
	}
	for _, a := range allowed {
		if k.Value == a {
			return a, ok
		}
	}
	l.errs.add(pos(file, k), "kind: must be one of %s, got %q", strings.Join(allowed, ", "), k.Value)
	return "", false
}

func (l *loader) loadDocument(path string, blob tree.Hash, doc yamlDoc) (loaded *Loaded) {
	kind, ok := l.header(path, doc.node, KindExperiment, KindExperimentTemplate)
	if !ok || kind == KindExperimentTemplate {
		return nil // templates may sit next to experiments; they are read when used
	}
	before := len(l.errs)
	defer func() { loaded.invalid = len(l.errs) > before }()
	loaded = &Loaded{
		Source:   FileRef{Path: path, Blob: string(blob)},
		Document: doc.index,
		pos:      map[string]Position{},
		bad:      map[string]bool{},
	}
	fileOf := map[*yaml.Node]string{}
	root := doc.node
	if spec := valueOf(root, "spec"); spec != nil && spec.Kind == yaml.MappingNode {
		if ref := valueOf(spec, "template"); ref != nil && ref.Kind == yaml.ScalarNode && ref.Value != "" {
			t := l.template(ref.Value, pos(path, ref), nil)
			if t != nil {
				for n, f := range t.fileOf {
					fileOf[n] = f
				}
				root = withValue(root, "spec", mergeSpec(t.spec, spec, fileOf))
				loaded.Templates = t.chain
			}
		}
	}
	d := decoder{file: path, fileOf: fileOf, errs: &l.errs, pos: loaded.pos, bad: loaded.bad}
	d.decode(root, reflect.ValueOf(&loaded.Experiment).Elem(), "")
	loaded.pos[""] = pos(path, doc.node)
	l.validateExperiment(loaded)
	return loaded
}

// templateFile is a parsed template with its own templates merged in.
type templateFile struct {
	spec   *yaml.Node
	fileOf map[*yaml.Node]string
	chain  []FileRef // this file first, then what it extends
}

// template loads the template at ref (a repository path); from is where it
// was named, for errors; seen holds the chain so far, to refuse loops.
func (l *loader) template(ref string, from Position, seen []string) *templateFile {
	path, err := tree.Clean(ref)
	if err != nil || path == "" {
		l.errs.add(from, "spec.template: %q must be a path of a file in the repository, from its root", ref)
		return nil
	}
	for _, s := range seen {
		if s == path {
			l.errs.add(from, "spec.template: %q extends itself (%s)", path, strings.Join(append(seen, path), " → "))
			return nil
		}
	}
	if len(seen) >= MaxTemplateDepth {
		l.errs.add(from, "spec.template: templates extend each other more than %d levels deep", MaxTemplateDepth)
		return nil
	}
	if t, ok := l.templates[path]; ok && len(seen) == 0 {
		if t == nil {
			l.errs.add(from, "spec.template: %q is not a valid template (see its errors)", path)
		}
		return t
	}
	t := l.readTemplate(path, from, seen)
	if len(seen) == 0 {
		l.templates[path] = t
	}
	return t
}

func (l *loader) readTemplate(path string, from Position, seen []string) *templateFile {
	docs, blob, found, err := l.readYAML(path)
	if err != nil {
		l.errs.add(from, "spec.template: %v", err)
		return nil
	}
	if !found {
		l.errs.add(from, "spec.template: %q not found in the repository (paths are from the repository root)", path)
		return nil
	}
	if len(docs) != 1 {
		l.errs.add(from, "spec.template: %q must hold exactly one document of kind %s, found %d", path, KindExperimentTemplate, len(docs))
		return nil
	}
	root := docs[0].node
	if _, ok := l.header(path, root, KindExperimentTemplate); !ok {
		l.errs.add(from, "spec.template: %q is not a valid template (see its errors)", path)
		return nil
	}
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch k := root.Content[i]; k.Value {
		case "apiVersion", "kind", "metadata", "spec":
		default:
			l.errs.add(pos(path, k), "unknown field %q%s", k.Value, hint(k.Value, []string{"apiVersion", "kind", "metadata", "spec"}))
		}
	}
	spec := valueOf(root, "spec")
	if spec == nil || spec.Kind != yaml.MappingNode {
		l.errs.add(pos(path, root), "spec: a template needs a spec mapping")
		return nil
	}
	t := &templateFile{spec: spec, fileOf: map[*yaml.Node]string{}, chain: []FileRef{{Path: path, Blob: string(blob)}}}
	markFile(root, path, t.fileOf)
	l.specFiles[path] = true
	if ref := valueOf(spec, "template"); ref != nil && ref.Kind == yaml.ScalarNode && ref.Value != "" {
		parent := l.template(ref.Value, pos(path, ref), append(seen, path))
		if parent == nil {
			return nil
		}
		for n, f := range parent.fileOf {
			t.fileOf[n] = f
		}
		t.spec = mergeSpec(parent.spec, spec, t.fileOf)
		t.chain = append(t.chain, parent.chain...)
	}
	return t
}
