package render

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// MaxRepoInputBytes bounds a repository file used as an input: it is hashed
// in memory while planning.
const MaxRepoInputBytes = 512 << 20

func plan(r tree.Reader, opts PlanOptions) (*PlanResult, error) {
	if opts.Mode == "" {
		opts.Mode = v1alpha1.ModeLocal
	}
	if opts.Mode != v1alpha1.ModeLocal && opts.Mode != v1alpha1.ModeKubernetes {
		return nil, fmt.Errorf("unknown mode %q: use %q or %q", opts.Mode, v1alpha1.ModeLocal, v1alpha1.ModeKubernetes)
	}
	repo, err := v1alpha1.Load(r, v1alpha1.LoadOptions{Mode: opts.Mode, Limits: opts.Limits})
	var errs v1alpha1.ErrorList
	if err != nil && !errors.As(err, &errs) {
		return nil, err
	}
	if repo == nil {
		return nil, errs.Err()
	}
	p := &planner{r: r, opts: opts, repo: repo, errs: errs, sha: map[string]string{}, digests: map[string]string{}}
	res := &PlanResult{Config: repo.Config, Limits: repo.Limits, Experiments: repo.Experiments, SpecFiles: repo.SpecFiles}
	for _, e := range repo.Experiments {
		if !e.Valid() {
			continue // its errors are reported; expanding it could mislead
		}
		runs, err := p.experiment(e)
		if err != nil {
			return nil, err
		}
		res.Runs = append(res.Runs, runs...)
		if max := repo.Limits.MaxRuns; max > 0 && len(res.Runs) > max {
			p.errs = append(p.errs, &v1alpha1.Error{Pos: e.Pos("metadata.name"),
				Message: fmt.Sprintf("the repository plans more than %d runs (limits.maxRuns) with this experiment", max)})
			res.Runs = nil
			break
		}
	}
	if err := p.errs.Err(); err != nil {
		return res, err
	}
	return res, nil
}

type planner struct {
	r    tree.Reader
	opts PlanOptions
	repo *v1alpha1.Repository
	errs v1alpha1.ErrorList
	sha  map[string]string // blob ID → sha256 of repository inputs
	// digests caches context digests by path and tree: experiments often
	// share a context.
	digests map[string]string
}

func (p *planner) errorf(e *v1alpha1.Loaded, field, format string, args ...any) {
	if len(p.errs) >= v1alpha1.MaxErrors {
		return // as Load: a bounded report, the first problems first
	}
	p.errs = append(p.errs, &v1alpha1.Error{Pos: e.Pos(field), Message: field + ": " + fmt.Sprintf(format, args...)})
}

// experimentParts are what every run of one experiment shares.
type experimentParts struct {
	// image is the contract's image (the reference as written, or host);
	// idImage the identity's (its digest alone, or host).
	image, idImage string
	context        contract.Context
	// contextDigest is the identity's contextTree: the context's tree
	// without the repository's spec files.
	contextDigest string
	inputs        []contract.Input
	idInputs      []contract.IdentityInput
	outputs       []string
}

func (p *planner) experiment(e *v1alpha1.Loaded) ([]Run, error) {
	before := len(p.errs)
	parts := experimentParts{image: contract.HostImage, idImage: contract.HostImage, outputs: normalizedOutputs(e.Spec.Outputs)}
	if p.opts.Mode == v1alpha1.ModeKubernetes {
		// The contract pulls the reference as written; the ID takes only
		// its digest, so re-tagging the same image moves nothing.
		parts.image = e.Spec.Image
		parts.idImage = ImageDigest(e.Spec.Image)
	}
	if err := p.context(e, &parts); err != nil {
		return nil, err
	}
	if err := p.inputs(e, &parts); err != nil {
		return nil, err
	}
	p.checkTemplates(e)
	if len(p.errs) > before {
		return nil, nil
	}
	return p.runs(e, parts), nil
}

// context names the experiment's context twice: by its real tree (what the
// runner materialises, reachable in Git) and by the digest the identity
// takes, the tree without the repository's spec files (experiment files,
// templates, expsync.yaml), so that editing a spec in the context — the
// usual layout, a spec beside its code — moves no ID by itself.
func (p *planner) context(e *v1alpha1.Loaded, parts *experimentParts) error {
	dir := e.Spec.Context
	ctxTree, err := tree.TreeHash(p.r, dir)
	if err != nil {
		if !errors.Is(err, tree.ErrNotExist) && !errors.Is(err, tree.ErrSymlink) {
			return fmt.Errorf("hash context of %s: %w", e.Metadata.Name, err)
		}
		p.errorf(e, "spec.context", "folder %q not found: %v", dir, err)
		return nil
	}
	excluded := tree.PathsBelow(dir, p.repo.SpecFiles)
	parts.context = contract.Context{Path: dir, Tree: string(ctxTree), Excluded: excluded}
	parts.contextDigest = string(ctxTree)
	if len(excluded) == 0 {
		return nil
	}
	key := dir + "\x00" + string(ctxTree)
	if d, ok := p.digests[key]; ok {
		parts.contextDigest = d
		return nil
	}
	d, err := tree.TreeIDWithout(p.r, dir, excluded)
	if err != nil {
		return fmt.Errorf("hash context of %s without its experiment files: %w", e.Metadata.Name, err)
	}
	p.digests[key] = string(d)
	parts.contextDigest = string(d)
	return nil
}

// ImageDigest is the digest part of a digest-pinned image reference
// ("sha256:<hex>"), what a run's identity records: the name and tag are
// for people, the digest is the content. Anything else (host) is returned
// as it is.
func ImageDigest(ref string) string {
	if i := strings.LastIndexByte(ref, '@'); i >= 0 && strings.HasPrefix(ref[i+1:], "sha256:") {
		return ref[i+1:]
	}
	return ref
}

func normalizedOutputs(outputs []string) []string {
	out := make([]string, 0, len(outputs))
	for _, o := range outputs {
		clean, _ := tree.Clean(o)
		if strings.HasSuffix(o, "/") {
			clean += "/"
		}
		out = append(out, clean)
	}
	sort.Strings(out)
	return out
}

var errNotRegular = errors.New("not a regular file")

// checkTemplates checks every {{...}} once per field, against the names the
// params and the sweep define, before any run is expanded.
func (p *planner) checkTemplates(e *v1alpha1.Loaded) {
	known := map[string]bool{}
	for k := range e.Spec.Params {
		known[k] = true
	}
	if s := e.Spec.Sweep; s != nil {
		for k := range s.Matrix {
			known[k] = true
		}
		for _, inc := range s.Include {
			for k := range inc {
				known[k] = true
			}
		}
	}
	check := func(field, s string) {
		names, err := templateRefs(s)
		if err != nil {
			p.errorf(e, field, "%v", err)
			return
		}
		for _, n := range names {
			if !known[n] {
				p.errorf(e, field, "{{params.%s}}: no parameter %q (params and sweep define %s)", n, n, knownNames(boolKeys(known)))
			}
		}
	}
	for i, s := range e.Spec.Command {
		check(fmt.Sprintf("spec.command[%d]", i), s)
	}
	for i, s := range e.Spec.Args {
		check(fmt.Sprintf("spec.args[%d]", i), s)
	}
	for i, v := range e.Spec.Env {
		if v.SecretRef == nil {
			check(fmt.Sprintf("spec.env[%d].value", i), v.Value)
		}
	}
}

func boolKeys(m map[string]bool) map[string]any {
	out := make(map[string]any, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// runs expands the sweep and repeat into runs with their IDs and contracts.
func (p *planner) runs(e *v1alpha1.Loaded, parts experimentParts) []Run {
	points := expandSweep(e.Spec.Sweep)
	seen := make(map[string]string, len(points))
	runs := make([]Run, 0, len(points)*e.Spec.Repeat)
	for _, pt := range points {
		params := make(map[string]any, len(e.Spec.Params)+len(pt.values))
		for k, v := range e.Spec.Params {
			params[k] = v
		}
		for k, v := range pt.values {
			params[k] = v
		}
		key := pointKey(params)
		if prev, dup := seen[key]; dup {
			p.errorf(e, pt.field, "this point (%s) is already planned by %s; every point must be distinct", strings.TrimSuffix(key, ";"), prev)
			continue
		}
		seen[key] = pt.field
		point := pt.values
		command, env, err := templated(e.Spec, params)
		if err != nil {
			p.errorf(e, pt.field, "%v", err)
			continue
		}
		for rep := 0; rep < e.Spec.Repeat; rep++ {
			run, err := p.run(e, parts, params, command, env, rep)
			run.Point = point
			if err != nil {
				p.errorf(e, pt.field, "%v", err)
				break
			}
			runs = append(runs, run)
		}
	}
	return runs
}

func templated(spec v1alpha1.ExperimentSpec, params map[string]any) ([]string, []contract.EnvVar, error) {
	command := make([]string, 0, len(spec.Command)+len(spec.Args))
	for _, s := range append(spec.Command[:len(spec.Command):len(spec.Command)], spec.Args...) {
		t, err := Template(s, params)
		if err != nil {
			return nil, nil, err
		}
		command = append(command, t)
	}
	env := make([]contract.EnvVar, 0, len(spec.Env))
	for _, v := range spec.Env {
		ev := contract.EnvVar{Name: v.Name}
		if v.SecretRef != nil {
			ev.SecretRef = &contract.SecretRef{Name: v.SecretRef.Name, Key: v.SecretRef.Key}
		} else {
			t, err := Template(v.Value, params)
			if err != nil {
				return nil, nil, err
			}
			ev.Value = t
		}
		env = append(env, ev)
	}
	sort.Slice(env, func(i, j int) bool { return env[i].Name < env[j].Name })
	return command, env, nil
}

func (p *planner) run(e *v1alpha1.Loaded, parts experimentParts, params map[string]any, command []string, env []contract.EnvVar, repeat int) (Run, error) {
	id := contract.Identity{
		IDVersion:   contract.IDVersion,
		Experiment:  e.Metadata.Name,
		Image:       parts.idImage,
		Command:     command,
		Env:         env,
		Params:      params,
		ContextTree: parts.contextDigest,
		Inputs:      parts.idInputs,
		Outputs:     parts.outputs,
		Metrics:     cleanOrEmpty(e.Spec.Metrics),
		Repeat:      repeat,
	}
	runID, err := id.ID()
	if err != nil {
		return Run{}, err
	}
	spec := &e.Spec
	return Run{
		ID:         runID,
		Experiment: e.Metadata.Name,
		SpecPath:   e.Source.Path,
		SpecBlob:   e.Source.Blob,
		Templates:  e.Templates,
		Params:     params,
		Repeat:     repeat,
		Spec:       spec,
		Meta:       &e.Metadata,
		Contract: contract.Contract{
			Version:    contract.Version,
			RunID:      runID,
			Experiment: e.Metadata.Name,
			Identity:   id,
			Image:      parts.image,
			Command:    command,
			Env:        env,
			Context:    parts.context,
			Inputs:     parts.inputs,
			Outputs:    parts.outputs,
			Metrics:    id.Metrics,
			Limits: contract.Limits{
				Timeout:        contract.Duration{Duration: spec.Timeout.Duration},
				CPU:            spec.Resources.CPU,
				Memory:         spec.Resources.Memory,
				GPU:            spec.Resources.GPU,
				MaxOutputBytes: p.repo.Limits.MaxOutputBytes,
				MaxLogBytes:    p.repo.Limits.MaxLogBytes,
				MaxOutputFiles: lowered(p.repo.Limits.MaxOutputFiles, contract.MaxOutputFiles),
			},
			Retries: contract.Retries{Limit: spec.Retries.Limit, OnExitCodes: spec.Retries.OnExitCodes},
			Store:   p.opts.StoreURL,
		},
	}, nil
}

// lowered is limit when a repository set it below builtin, else 0: the
// contract then leaves it out (the runner applies builtin), so contracts of
// repositories that do not lower it keep their scheduling digests.
func lowered(limit, builtin int) int {
	if limit > 0 && limit < builtin {
		return limit
	}
	return 0
}

func cleanOrEmpty(p string) string {
	if p == "" {
		return ""
	}
	c, _ := tree.Clean(p)
	return c
}
