package deploy

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

// Options configure a deployment.
type Options struct {
	// StoreDir is the content-addressed store and run cache.
	StoreDir string
	// Store, when set, is the store to use instead of opening StoreDir: the
	// controller's store on a repository's claim (executor/kube), whose
	// inputs and results halves are separate folders.
	Store store.Store
	// Plan, when set, replaces the planning options (the controller plans
	// in kubernetes mode, with the store location its pods see).
	Plan *render.PlanOptions
	// StateDir holds the Git caches, the executor's journal and the work
	// folders.
	StateDir string
	// Key is the signing key (a key file or KMS URI); its public key is
	// always trusted.
	Key string
	// LoadSigner, when set, loads the signing key instead of
	// attest.LoadSigner(ctx, Key): a key kept in a Kubernetes Secret. Key
	// then only names it in messages and in the trusted key list.
	LoadSigner func(ctx context.Context) (*attest.Signer, error)
	// TrustedKeys are further public key files (or KMS URIs) whose signed
	// results folders count as done.
	TrustedKeys []string
	// Verifiers are further trusted keys, already loaded (the controller
	// reads them from a Secret).
	Verifiers attest.Verifiers
	BuilderID string
	// BatchInterval is how often finished runs are committed (0: 10s).
	BatchInterval time.Duration
	// Author of results commits (default expsync <expsync@localhost>);
	// CommitSigner signs them (optional).
	Author       gitsource.Signature
	CommitSigner gitsource.Signer
	Events       func(reconcile.Event)

	// Executor runs the contracts, named ExecutorName in run.json; nil: the
	// local executor, configured by Local.
	Executor     Executor
	ExecutorName string
	Local        LocalOptions
}

// LocalOptions configure the local executor.
type LocalOptions struct {
	// Concurrency bounds the runs at once (0: as many as the CPU and memory
	// requests allow).
	Concurrency int
	// GPUs is how many GPUs runs may request in total (0: a run requesting
	// one is refused).
	GPUs int
	// Events receives the executor's own events (queued, started).
	Events func(local.Event)
	// Runner tunes the runner (timeouts, secrets); Store and WorkRoot are set
	// by the executor.
	Runner runner.Options
}

// Executor is what a deployment runs contracts with.
type Executor interface {
	reconcile.Executor
	// Shutdown stops the executor: queued runs are cancelled, running ones
	// get until ctx ends to finish.
	Shutdown(ctx context.Context) error
}

// Deployment is an open deployment.
type Deployment struct {
	Reconciler *reconcile.Reconciler
	// Refs reconciles the refs polls report, with the deployment's author
	// and commit signer (`expsync run` one ref, Refs.Serve every ref).
	Refs reconcile.RefReconciler
	// Store is the local store opened from StoreDir (nil when
	// Options.Store was given: Reconciler.Store is that one).
	Store    *store.Local
	Executor Executor
	// Local is the local executor (nil when Options.Executor was set) and
	// Recovered the runs a killed predecessor left in flight on it: they
	// are rerun or recovered from the run cache by the next reconcile.
	Local     *local.Executor
	Recovered []local.Recovered
	stateDir  string
}

// Open opens the store, starts loading the signing key, starts the executor
// (the local one takes the state folder's lock and recovers what a killed
// predecessor left running) and builds the Reconciler. An error with a nil
// Deployment means it cannot start; with a Deployment it is a warning to
// show (recovery problems: the runs are planned again anyway).
func Open(ctx context.Context, opts Options) (*Deployment, error) {
	if (opts.StoreDir == "" && opts.Store == nil) || opts.StateDir == "" {
		return nil, errors.New("a store folder and a state folder are required")
	}
	if opts.Key == "" && opts.LoadSigner == nil {
		return nil, errors.New("a signing key is required (--key; make one with `expsync keygen`)")
	}
	var (
		st  *store.Local
		use store.Store = opts.Store
	)
	if use == nil {
		var err error
		if st, err = store.OpenLocal(opts.StoreDir); err != nil {
			return nil, fmt.Errorf("open store %s: %w", opts.StoreDir, err)
		}
		use = st
	}
	others := append(attest.Verifiers{}, opts.Verifiers...)
	for _, ref := range opts.TrustedKeys {
		k, err := attest.LoadVerifierKey(ctx, ref)
		if err != nil {
			return nil, fmt.Errorf("trusted key %s: %w", ref, err)
		}
		others = append(others, k)
	}
	keys, err := openKeys(ctx, opts.Key, opts.LoadSigner, others)
	if err != nil {
		return nil, err
	}
	d := &Deployment{Store: st, Executor: opts.Executor, stateDir: opts.StateDir}
	name := opts.ExecutorName
	var warning error
	if d.Executor == nil {
		if st == nil {
			return nil, errors.New("the local executor needs a store folder (StoreDir)")
		}
		ex, recovered, err := local.Open(ctx, local.DeploymentOptions{Store: st, StateDir: opts.StateDir,
			Concurrency: opts.Local.Concurrency, GPUs: opts.Local.GPUs, Runner: opts.Local.Runner, OnEvent: opts.Local.Events})
		if ex == nil {
			return nil, err
		}
		d.Executor, d.Local, d.Recovered, warning = ex, ex, recovered, err
		name = "local"
	}
	builder := opts.BuilderID
	if builder == "" {
		builder = attest.DefaultBuilderID
	}
	plan := render.PlanOptions{}
	if st != nil {
		plan.StoreURL = "file://" + st.Root()
	}
	if opts.Plan != nil {
		plan = *opts.Plan
	}
	d.Reconciler = &reconcile.Reconciler{
		Store: use, Keys: keys, BuilderID: builder, ExecutorName: name, Executor: d.Executor,
		Plan:          plan,
		BatchInterval: opts.BatchInterval,
		Events:        opts.Events,
	}
	d.Refs = reconcile.RefReconciler{Reconciler: d.Reconciler, Author: opts.Author, CommitSigner: opts.CommitSigner}
	return d, warning
}

// Source opens a repository with its Git cache under the state folder.
func (d *Deployment) Source(repo gitsource.Repository) (*gitsource.Source, error) {
	return gitsource.New(repo, filepath.Join(d.stateDir, "git"))
}

// KeyError waits for the signing key and says why it cannot be used, or
// returns nil (see reconcile.Reconciler.KeyError).
func (d *Deployment) KeyError() error { return d.Reconciler.KeyError() }

// Close stops the executor: queued runs are cancelled, running ones get
// until ctx ends to finish.
func (d *Deployment) Close(ctx context.Context) error {
	return d.Executor.Shutdown(ctx)
}
