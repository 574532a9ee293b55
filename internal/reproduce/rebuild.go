package reproduce

import (
	"fmt"
	"reflect"
	"sort"
	"strings"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
)

// Rebuild makes the run contract a reproduction executes from the attested
// material alone:
//
//   - command, environment (secrets by name), parameters, outputs, metrics
//     and the inputs' paths and digests come from the identity in run.json,
//     which hashes to the attested run ID;
//   - the context is the tree the signed statement names (gitTree), with
//     the spec files run.json lists as left out of the identity;
//   - where each input is fetched from comes from the signed contract
//     byproduct or the statement's resolved dependencies;
//   - limits and retries (scheduling only) come from the signed contract.
//
// The run ID recomputed from the rebuilt contract must equal the attested
// one, and the signed contract, when there is one, must agree with it:
// otherwise nothing runs. storeURL is the local store the contract names.
func Rebuild(m *Material, storeURL string) (contract.Contract, error) {
	rec, id := m.Record, m.Record.Identity
	fail := func(format string, args ...any) (contract.Contract, error) {
		return contract.Contract{}, fmt.Errorf("rebuild the run contract of %s: %s", contract.ShortID(m.RunID), fmt.Sprintf(format, args...))
	}
	if id.IDVersion != contract.IDVersion {
		return fail("the run was recorded with run-ID recipe version %d; this expsync computes version %d (use the expsync release that ran it)", id.IDVersion, contract.IDVersion)
	}
	if got, err := id.ID(); err != nil || got != m.RunID {
		return fail("the identity in run.json hashes to %s (%v), the statement attests %s", got, err, m.RunID)
	}
	ctx, err := attestedContext(m)
	if err != nil {
		return fail("%v", err)
	}
	inputs, err := attestedInputs(m)
	if err != nil {
		return fail("%v", err)
	}
	c := contract.Contract{
		Version:    contract.Version,
		RunID:      m.RunID,
		Experiment: id.Experiment,
		Identity:   id,
		Image:      rec.Image,
		Command:    append([]string(nil), id.Command...),
		Env:        append([]contract.EnvVar(nil), id.Env...),
		Context:    ctx,
		Inputs:     inputs,
		Outputs:    append([]string(nil), id.Outputs...),
		Metrics:    id.Metrics,
		Store:      storeURL,
	}
	if c.Image == "" {
		c.Image = id.Image
	}
	if sc := m.Contract; sc != nil {
		c.Limits, c.Retries = sc.Limits, sc.Retries
		if err := agree(c, *sc); err != nil {
			return fail("%v", err)
		}
	} else {
		c.Limits = contract.Limits{CPU: rec.Requests.CPU, Memory: rec.Requests.Memory}
	}
	if got, err := identityOf(c).ID(); err != nil || got != m.RunID {
		return fail("the rebuilt contract hashes to run %s (%v), not the attested %s", got, err, m.RunID)
	}
	return c, nil
}

// attestedContext is the context the statement names: its one gitTree
// dependency ("context:<path>"), and the spec files run.json records.
func attestedContext(m *Material) (contract.Context, error) {
	trees := m.Verified.DependenciesWith("gitTree")
	if len(trees) != 1 {
		return contract.Context{}, fmt.Errorf("the statement names %d context trees, want 1", len(trees))
	}
	d := trees[0]
	if !strings.HasPrefix(d.Name, "context:") {
		return contract.Context{}, fmt.Errorf("the context tree dependency is named %q, want context:<path>", d.Name)
	}
	p := strings.TrimPrefix(d.Name, "context:")
	if p == "/" {
		p = ""
	}
	tree := d.Digest.Get("gitTree")
	if tree != m.Record.ContextTree {
		return contract.Context{}, fmt.Errorf("run.json names context tree %s, the statement %s", m.Record.ContextTree, tree)
	}
	return contract.Context{Path: p, Tree: tree, Excluded: append([]string(nil), m.Record.ContextExcluded...)}, nil
}

// attestedInputs are the identity's inputs (name, path, digest) with where
// to get each: the URI of the signed contract or of the statement's
// dependency, and for repository files their path and blob from run.json.
func attestedInputs(m *Material) ([]contract.Input, error) {
	deps := map[string]attest.Dependency{}
	for _, d := range m.Verified.DependenciesWith("sha256") {
		if name, ok := strings.CutPrefix(d.Name, "inputs/"); ok {
			deps[name] = d
		}
	}
	recorded := map[string]int{}
	for i, in := range m.Record.Inputs {
		recorded[in.Name] = i
	}
	signed := map[string]contract.Input{}
	if m.Contract != nil {
		for _, in := range m.Contract.Inputs {
			signed[in.Name] = in
		}
	}
	var out []contract.Input
	for _, in := range m.Record.Identity.Inputs {
		i, ok := recorded[in.Name]
		if !ok || m.Record.Inputs[i].SHA256 != in.SHA256 {
			return nil, fmt.Errorf("input %q: run.json's inputs and its identity disagree", in.Name)
		}
		r := m.Record.Inputs[i]
		c := contract.Input{Name: in.Name, Path: in.Path, SHA256: in.SHA256, RepoPath: r.RepoPath, GitBlob: r.GitBlob}
		if d, ok := deps[in.Name]; ok {
			if d.Digest.SHA256 != in.SHA256 {
				return nil, fmt.Errorf("input %q: the statement attests sha256 %s, the identity %s", in.Name, d.Digest.SHA256, in.SHA256)
			}
			c.URI = d.URI
		}
		if s, ok := signed[in.Name]; ok && s.SHA256 == in.SHA256 && s.URI != "" {
			c.URI = s.URI // as the runner had it (run.json's is sanitised)
		}
		if c.URI == "" && c.RepoPath == "" {
			c.URI = r.URI
		}
		out = append(out, c)
	}
	return out, nil
}

// agree checks that the signed contract executed what the rebuilt one
// will: the same command, environment, context, inputs and outputs.
func agree(rebuilt, signed contract.Contract) error {
	type part struct {
		name      string
		ours, its any
	}
	inputs := func(ins []contract.Input) []contract.IdentityInput {
		out := make([]contract.IdentityInput, 0, len(ins))
		for _, in := range ins {
			out = append(out, contract.IdentityInput{Name: in.Name, Path: in.Path, SHA256: in.SHA256})
		}
		sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
		return out
	}
	for _, p := range []part{
		{"run ID", rebuilt.RunID, signed.RunID},
		{"command", rebuilt.Command, signed.Command},
		{"environment", nilIfEmpty(rebuilt.Env), nilIfEmpty(signed.Env)},
		{"context tree", rebuilt.Context.Tree, signed.Context.Tree},
		{"context path", rebuilt.Context.Path, signed.Context.Path},
		{"context's spec files", nilIfEmpty(rebuilt.Context.Excluded), nilIfEmpty(signed.Context.Excluded)},
		{"inputs", nilIfEmpty(inputs(rebuilt.Inputs)), nilIfEmpty(inputs(signed.Inputs))},
		{"outputs", nilIfEmpty(rebuilt.Outputs), nilIfEmpty(signed.Outputs)},
		{"metrics", rebuilt.Metrics, signed.Metrics},
	} {
		if !reflect.DeepEqual(p.ours, p.its) {
			return fmt.Errorf("the signed contract and run.json disagree on the %s (%v, %v)", p.name, p.its, p.ours)
		}
	}
	return nil
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// identityOf is the run identity of what contract c executes: every field
// the runner acts on, plus the parameters and repeat index, which only the
// identity carries (they reach the runner through the templated command).
// Its context tree is the identity's: Check recomputes it from the real
// tree and the excluded spec files.
func identityOf(c contract.Contract) contract.Identity {
	id := contract.Identity{
		IDVersion:   contract.IDVersion,
		Experiment:  c.Experiment,
		Image:       c.Identity.Image,
		Command:     c.Command,
		Env:         c.Env,
		Params:      c.Identity.Params,
		ContextTree: c.Identity.ContextTree,
		Outputs:     c.Outputs,
		Metrics:     c.Metrics,
		Repeat:      c.Identity.Repeat,
	}
	for _, in := range c.Inputs {
		id.Inputs = append(id.Inputs, contract.IdentityInput{Name: in.Name, Path: in.Path, SHA256: in.SHA256})
	}
	sort.Slice(id.Inputs, func(i, j int) bool { return id.Inputs[i].Name < id.Inputs[j].Name })
	return id
}
