package v1alpha1

// FileRef is a repository file by path and Git blob ID.
type FileRef struct {
	Path string `json:"path"`
	Blob string `json:"blob"`
}

// Repository is a loaded, validated, defaulted repository.
type Repository struct {
	// Config is expsync.yaml with defaults applied.
	Config RepositoryConfig
	// Limits are the effective limits: built-in, lowered by the operator's,
	// lowered by the repository's.
	Limits Limits
	// Experiments are sorted by name.
	Experiments []*Loaded
	// SpecFiles are the repository paths of the files the loader read as
	// what they claim to be, sorted: expsync.yaml, every experiment file
	// whose documents all name apiVersion expsync.dev/v1alpha1 and kind
	// Experiment or ExperimentTemplate, and every template an experiment
	// extends that reads as one. The run identity names a context by its
	// tree without these files, so editing a spec (a sweep value, a
	// timeout) moves only the IDs its own fields move. A YAML file that
	// does not read as a spec stays in the context: code may read it.
	SpecFiles []string
}

// Loaded is one experiment after its template was merged and defaults were
// applied, with where it came from.
type Loaded struct {
	Experiment
	// Source is the experiment file; Document its 0-based index in the file.
	Source   FileRef
	Document int
	// Templates are the template files merged into it, nearest first.
	Templates []FileRef
	// pos records where fields were written ("spec.context",
	// "spec.inputs[0].file", ...), for errors found after loading.
	pos map[string]Position
	// bad holds the field paths that failed to decode.
	bad map[string]bool
	// invalid is set when loading it reported an error.
	invalid bool
}

// Valid reports whether the experiment loaded without errors; render.Plan
// expands only valid experiments, so one bad experiment does not hide the
// problems of the others in the same file.
func (l *Loaded) Valid() bool { return !l.invalid }

// Pos returns where field (a path such as "spec.context") was written, or
// the document's position when it was not written (defaulted fields).
func (l *Loaded) Pos(field string) Position {
	if p, ok := l.pos[field]; ok {
		return p
	}
	if p, ok := l.pos[""]; ok {
		return p
	}
	return Position{File: l.Source.Path}
}

// LoadOptions are what the caller (CLI, controller) decides, not the repository.
type LoadOptions struct {
	// Mode decides which images are allowed.
	Mode Mode
	// Limits are the operator's; zero fields keep the built-in limits.
	Limits Limits
}
