package v1alpha1

import "github.com/expsync/expsync/tree"

// LoadExperimentFile loads the experiments of one file, with the templates
// they extend, from r without reading the rest of the repository: what a
// reproduction reads from the blobs a run's attestation names (the
// experiment file and its templates at the paths they had), to learn the
// tolerances declared before the run. Only the checks that depend on the
// files themselves run: contexts and repository inputs are not looked up,
// and the repository's expsync.yaml is not read (its defaults concern
// scheduling only). Problems come back as an ErrorList, with the
// experiments.
func LoadExperimentFile(r tree.Reader, path string, opts LoadOptions) ([]*Loaded, error) {
	l := &loader{r: r, opts: opts, templates: map[string]*templateFile{}, specFiles: map[string]bool{}, fileOnly: true}
	l.limits = BuiltinLimits().Lower(opts.Limits)
	applyConfigDefaults(&l.config)
	loaded, err := l.loadFile(path)
	if err != nil {
		return nil, err
	}
	if err := l.errs.dedupe().Err(); err != nil {
		return loaded, err
	}
	return loaded, nil
}
