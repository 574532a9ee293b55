package v1alpha1

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"reflect"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// Load reads expsync.yaml and every experiment file of the repository r,
// merges templates, applies defaults and validates everything. Validation
// problems come back together as an ErrorList (sorted by file, line,
// column); other errors (the reader failing) are returned as they are.
func Load(r tree.Reader, opts LoadOptions) (*Repository, error) {
	l := &loader{r: r, opts: opts, templates: map[string]*templateFile{}, specFiles: map[string]bool{}}
	repo, err := l.load()
	if err != nil {
		return nil, err
	}
	if err := l.errs.dedupe().Err(); err != nil {
		return repo, err
	}
	return repo, nil
}

type loader struct {
	r         tree.Reader
	opts      LoadOptions
	limits    Limits
	config    RepositoryConfig
	errs      ErrorList
	templates map[string]*templateFile
	// bytesRead counts the YAML bytes read, against MaxTotalBytes.
	bytesRead int64
	// specFiles collects Repository.SpecFiles.
	specFiles map[string]bool
	// experimentsAt is where expsync.yaml names the experiments folder
	// (zero when it does not: the default folder may be absent).
	experimentsAt Position
	// fileOnly skips the checks that read other files of the repository
	// (LoadExperimentFile).
	fileOnly bool
}

func (l *loader) load() (*Repository, error) {
	l.limits = BuiltinLimits().Lower(l.opts.Limits)
	if err := l.loadConfig(); err != nil {
		return nil, err
	}
	files, err := l.experimentFiles()
	if err != nil {
		return nil, err
	}
	var experiments []*Loaded
	for _, f := range files {
		loaded, err := l.loadFile(f)
		if err != nil {
			return nil, err
		}
		experiments = append(experiments, loaded...)
	}
	experiments = l.checkUniqueNames(experiments)
	specFiles := make([]string, 0, len(l.specFiles))
	for p := range l.specFiles {
		specFiles = append(specFiles, p)
	}
	sort.Strings(specFiles)
	return &Repository{Config: l.config, Limits: l.limits, Experiments: experiments, SpecFiles: specFiles}, nil
}

// readYAML reads a file within the byte limit and parses its documents. A
// missing file is reported to the caller (ok false, no error recorded).
func (l *loader) readYAML(path string) (docs []yamlDoc, blob tree.Hash, ok bool, err error) {
	e, err := l.r.Stat(path)
	if errors.Is(err, tree.ErrNotExist) {
		return nil, "", false, nil
	}
	if err != nil {
		return nil, "", false, fmt.Errorf("read %s: %w", path, err)
	}
	if e.Mode != tree.ModeFile && e.Mode != tree.ModeExecutable {
		l.errs.add(Position{File: path, Line: 1, Column: 1}, "must be a regular file, not a %s", modeName(e.Mode))
		return nil, e.Hash, true, nil
	}
	if l.limits.MaxFileBytes > 0 && e.Size > l.limits.MaxFileBytes {
		l.errs.add(Position{File: path, Line: 1, Column: 1}, "file is %d bytes; the limit is %d (limits.maxFileBytes)", e.Size, l.limits.MaxFileBytes)
		return nil, e.Hash, true, nil
	}
	if max := l.limits.MaxTotalBytes; max > 0 && l.bytesRead+e.Size > max {
		l.errs.add(Position{File: path, Line: 1, Column: 1}, "the repository's YAML files exceed %d bytes together (limits.maxTotalBytes); not read", max)
		return nil, e.Hash, true, nil
	}
	l.bytesRead += e.Size
	data, err := l.r.ReadFile(path, l.limits.MaxFileBytes)
	if err != nil {
		if errors.Is(err, tree.ErrTooLarge) {
			l.errs.add(Position{File: path, Line: 1, Column: 1}, "file exceeds the limit of %d bytes (limits.maxFileBytes)", l.limits.MaxFileBytes)
			return nil, e.Hash, true, nil
		}
		return nil, "", false, fmt.Errorf("read %s: %w", path, err)
	}
	docs, errs := parseDocuments(path, data, l.limits)
	l.errs = append(l.errs, errs...)
	return docs, e.Hash, true, nil
}

func modeName(m tree.Mode) string {
	switch m {
	case tree.ModeDir:
		return "folder"
	case tree.ModeSymlink:
		return "symlink (symlinks are not followed)"
	case tree.ModeSubmodule:
		return "submodule"
	}
	return fmt.Sprintf("mode %o", m)
}

// loadConfig reads expsync.yaml; a repository without one gets defaults.
func (l *loader) loadConfig() error {
	docs, _, ok, err := l.readYAML(ConfigFile)
	if err != nil {
		return err
	}
	if e, err := l.r.Stat(ConfigFile); ok && err == nil && (e.Mode == tree.ModeFile || e.Mode == tree.ModeExecutable) {
		l.specFiles[ConfigFile] = true // its name is reserved: no code reads it
	}
	var cfg RepositoryConfig
	if ok && len(docs) > 1 {
		l.errs.add(pos(ConfigFile, docs[1].node), "%s holds one document, found %d", ConfigFile, len(docs))
	}
	if ok && len(docs) > 0 {
		d := decoder{file: ConfigFile, errs: &l.errs}
		d.decode(docs[0].node, reflect.ValueOf(&cfg).Elem(), "")
		l.validateConfig(&cfg, docs[0].node)
	}
	if ok && len(docs) > 0 && cfg.Experiments != "" {
		l.experimentsAt = pos(ConfigFile, orRoot(valueOf(docs[0].node, "experiments"), docs[0].node))
	}
	applyConfigDefaults(&cfg)
	l.config = cfg
	return nil
}

func (l *loader) validateConfig(cfg *RepositoryConfig, root *yaml.Node) {
	at := func(key string) Position {
		n := root
		for _, k := range strings.Split(key, ".") {
			if v := valueOf(n, k); v != nil {
				n = v
			}
		}
		return pos(ConfigFile, n)
	}
	if cfg.APIVersion != "" && cfg.APIVersion != APIVersion {
		l.errs.add(at("apiVersion"), "apiVersion: must be %q, got %q", APIVersion, cfg.APIVersion)
	}
	if cfg.Kind != "" && cfg.Kind != KindRepositoryConfig {
		l.errs.add(at("kind"), "kind: must be %q, got %q", KindRepositoryConfig, cfg.Kind)
	}
	for _, f := range []struct {
		key string
		val *string
	}{{"experiments", &cfg.Experiments}, {"results", &cfg.Results}} {
		if *f.val == "" {
			continue
		}
		clean, err := tree.Clean(*f.val)
		switch {
		case err != nil:
			l.errs.add(at(f.key), "%s: %q must be a relative path inside the repository", f.key, *f.val)
			*f.val = "" // the default applies, so the rest can still be checked
		case clean == "":
			l.errs.add(at(f.key), "%s: must be a folder below the repository root, not the root", f.key)
			*f.val = ""
		default:
			*f.val = clean
		}
	}
	// Every results commit writes below the results folder: a name Git
	// refuses on some platform (".git.", "git~1", "aux", "a:b") would break
	// every later checkout of the branch.
	if cfg.Results != "" {
		var pe *tree.PathError
		switch err := tree.CheckResultPath(cfg.Results); {
		case errors.As(err, &pe):
			l.errs.add(at("results"), "results: %q %s; choose another folder", pe.Component, pe.Reason)
			cfg.Results = ""
		case len(cfg.Results) > contract.MaxResultsFolderBytes:
			l.errs.add(at("results"), "results: %d bytes; the limit is %d (run folders and their outputs go below it)", len(cfg.Results), contract.MaxResultsFolderBytes)
			cfg.Results = ""
		}
	}
	for i, pattern := range cfg.Ignore {
		if _, err := path.Match(pattern, ""); err != nil {
			n := valueOf(root, "ignore")
			if n != nil && i < len(n.Content) {
				n = n.Content[i]
			}
			l.errs.add(pos(ConfigFile, orRoot(n, root)), "ignore[%d]: %q is not a valid glob pattern: %v", i, pattern, err)
		}
	}
	for _, raise := range l.limits.exceeded(cfg.Limits) {
		l.errs.add(at("limits."+raise.field), "limits.%s: %v is above the operator's limit %v; a repository can only lower limits",
			raise.field, raise.asked, raise.allowed)
	}
	l.limits = l.limits.Lower(cfg.Limits)
	if d := cfg.Defaults; d != nil {
		// The defaults are checked as a spec holding only them would be.
		probe := &Loaded{Source: FileRef{Path: ConfigFile}, pos: map[string]Position{}}
		walkPositions(valueOf(root, "defaults"), "spec", probe.pos)
		probe.Spec = ExperimentSpec{Resources: d.Resources, Timeout: d.Timeout, Queue: d.Queue, PriorityClassName: d.PriorityClassName}
		var errs ErrorList
		checker{e: probe, errs: &errs, lim: l.limits}.scheduling()
		for _, e := range errs {
			e.Message = "defaults." + strings.TrimPrefix(e.Message, "spec.")
		}
		l.errs = append(l.errs, errs...)
	}
	if cfg.Experiments != "" && cfg.Results != "" && tree.Contains(cfg.Results, cfg.Experiments) {
		l.errs.add(at("experiments"), "experiments: %q lies inside the results folder %q", cfg.Experiments, cfg.Results)
	}
}

// experimentFiles lists *.yaml and *.yml below the experiments folder
// (excluding the results folder), sorted.
func (l *loader) experimentFiles() ([]string, error) {
	root := l.config.Experiments
	e, err := l.r.Stat(root)
	switch {
	case errors.Is(err, tree.ErrNotExist) && l.experimentsAt.File != "":
		l.errs.add(l.experimentsAt, "experiments: folder %q not found in the repository; create it or fix %s", root, ConfigFile)
		return nil, nil
	case errors.Is(err, tree.ErrNotExist):
		return nil, nil // a repository without experiments plans no runs
	case errors.Is(err, tree.ErrSymlink) || err == nil && !e.IsDir():
		l.errs.add(Position{File: ConfigFile, Line: 1, Column: 1}, "experiments: %q is not a folder of the repository", root)
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("list experiment files: %w", err)
	}
	var files []string
	err = tree.Walk(l.r, root, func(p string, e tree.Entry) error {
		if l.ignored(p) {
			if e.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if e.IsDir() {
			if tree.Contains(l.config.Results, p) {
				return fs.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".yaml") && !strings.HasSuffix(p, ".yml") {
			return nil
		}
		files = append(files, p)
		if l.limits.MaxFiles > 0 && len(files) > l.limits.MaxFiles {
			return errTooManyFiles
		}
		return nil
	})
	if errors.Is(err, errTooManyFiles) {
		l.errs.add(Position{File: root, Line: 1, Column: 1}, "more than %d experiment files (limits.maxFiles)", l.limits.MaxFiles)
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("list experiment files: %w", err)
	}
	sort.Strings(files)
	return files, nil
}

var errTooManyFiles = errors.New("too many files")

func (l *loader) ignored(p string) bool {
	for _, pattern := range l.config.Ignore {
		if ok, _ := path.Match(pattern, p); ok {
			return true
		}
	}
	return false
}

// walkPositions records the position of every field below n as decode
// would, for checks that run on values decoded elsewhere.
func walkPositions(n *yaml.Node, path string, out map[string]Position) {
	n = deref(n)
	if n == nil {
		return
	}
	out[path] = pos(ConfigFile, n)
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			walkPositions(n.Content[i+1], path+"."+n.Content[i].Value, out)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			walkPositions(c, fmt.Sprintf("%s[%d]", path, i), out)
		}
	}
}

func orRoot(n, root *yaml.Node) *yaml.Node {
	if n == nil {
		return root
	}
	return n
}

// checkUniqueNames reports every experiment whose name an earlier file (in
// path order) already used, naming both places, and drops it.
func (l *loader) checkUniqueNames(exps []*Loaded) []*Loaded {
	first := map[string]*Loaded{}
	kept := exps[:0]
	for _, e := range exps {
		if e.Metadata.Name == "" {
			continue
		}
		if prev, dup := first[e.Metadata.Name]; dup {
			l.errs.add(e.Pos("metadata.name"), "metadata.name: experiment %q is also defined at %s; names are unique per repository",
				e.Metadata.Name, prev.Pos("metadata.name"))
			continue
		}
		first[e.Metadata.Name] = e
		kept = append(kept, e)
	}
	sort.Slice(kept, func(i, j int) bool { return kept[i].Metadata.Name < kept[j].Metadata.Name })
	return kept
}

// dedupe drops repeated errors (a template's problem reported once per
// experiment that extends it).
func (l ErrorList) dedupe() ErrorList {
	seen := map[string]bool{}
	out := l[:0]
	for _, e := range l {
		if k := e.Error(); !seen[k] {
			seen[k] = true
			out = append(out, e)
		}
	}
	return out
}
