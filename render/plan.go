// Package render turns a loaded repository into runs: it expands sweeps,
// templates commands, computes each run's content-addressed ID and fills in
// the contract a runner executes. It never talks to a cluster.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package render

import (
	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// PlanOptions are the caller's choices.
type PlanOptions struct {
	// Mode is local (every run on the host, identity image "host") or
	// kubernetes (digest-pinned images only). Default local.
	Mode v1alpha1.Mode
	// StoreURL is written into every contract (for example
	// "file:///var/lib/expsync/store").
	StoreURL string
	// Limits are the operator's; zero fields keep the built-in limits.
	Limits v1alpha1.Limits
}

// PlanResult is everything a snapshot asks for.
type PlanResult struct {
	Config      v1alpha1.RepositoryConfig
	Limits      v1alpha1.Limits
	Experiments []*v1alpha1.Loaded
	// SpecFiles are the repository's spec files (v1alpha1.Repository.SpecFiles).
	SpecFiles []string
	// Runs are ordered by experiment name, then sweep point order, then repeat.
	Runs []Run
}

// Run is one point (and repeat) of one experiment.
type Run struct {
	// ID is the hex sha256 of Contract.Identity's canonical JSON.
	ID         string
	Experiment string
	// SpecPath and SpecBlob are the experiment file's repository path and Git
	// blob ID; Templates the template files merged into it.
	SpecPath  string
	SpecBlob  string
	Templates []v1alpha1.FileRef
	// Params are the point's parameters (defaults merged with the point).
	Params map[string]any
	// Point is the sweep point alone (matrix values or an include entry);
	// empty without a sweep. Shared: read it, never modify it.
	Point map[string]any
	// Repeat is the repeat index (0 for the first run of a point).
	Repeat int
	// Spec is the merged, defaulted spec of the experiment, shared by all its
	// runs: read it, never modify it. Command and env in it are untemplated;
	// the templated ones are in Contract.
	Spec *v1alpha1.ExperimentSpec
	// Meta is the experiment's metadata, shared like Spec.
	Meta *v1alpha1.ObjectMeta
	// Contract is what a runner executes; Contract.Identity hashes to ID.
	Contract contract.Contract
}

// Plan loads the repository r and expands it into runs. A validation failure
// is returned as a v1alpha1.ErrorList whose items carry file:line:col; the
// result is then still returned, holding the runs of the experiments that
// are valid (callers decide whether a partly invalid commit runs anything).
func Plan(r tree.Reader, opts PlanOptions) (*PlanResult, error) {
	return plan(r, opts)
}

// Contract returns a copy of the run's contract that the caller may modify
// (contract.Contract.Clone).
func Contract(run Run) contract.Contract { return run.Contract.Clone() }
