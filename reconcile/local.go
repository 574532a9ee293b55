package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

// LocalOptions configure the embedded default: a local store, the local
// executor and a signing key file.
type LocalOptions struct {
	// StoreDir is the content-addressed store and run cache.
	StoreDir string
	// StateDir holds the Git caches, the executor's journal and the work
	// folders.
	StateDir string
	// Key is the signing key (a key file or KMS URI); its public key is
	// always trusted.
	Key string
	// TrustedKeys are further public key files whose signed results folders
	// count as done.
	TrustedKeys []string
	BuilderID   string
	// Concurrency bounds the runs at once (0: as many as the CPU and memory
	// requests allow).
	Concurrency int
	// GPUs is how many GPUs runs may request in total (0: a run requesting
	// one is refused).
	GPUs          int
	BatchInterval time.Duration
	// Author of results commits (default expsync <expsync@localhost>).
	Author gitsource.Signature
	// CommitSigner signs results commits (optional).
	CommitSigner gitsource.Signer
	Events       func(Event)
	// ExecutorEvents receives the executor's own events (queued, started).
	ExecutorEvents func(local.Event)
	// Runner tunes the runner (timeouts, secrets); Store and WorkRoot are set here.
	Runner runner.Options
}

// Local is an open embedded deployment.
type Local struct {
	Reconciler *Reconciler
	Executor   *local.Executor
	Store      *store.Local
	opts       LocalOptions
}

// OpenLocal opens the store, loads the key, takes the state folder's lock
// and recovers what a killed predecessor left running: stale process groups
// are ended, and their runs are rerun or recovered by the next reconcile
// (runs are keyed by ID, so none is duplicated).
func OpenLocal(ctx context.Context, opts LocalOptions) (*Local, []local.Recovered, error) {
	if opts.StoreDir == "" || opts.StateDir == "" {
		return nil, nil, errors.New("a store folder and a state folder are required")
	}
	if opts.Key == "" {
		return nil, nil, errors.New("a signing key is required (--key; make one with `expsync keygen`)")
	}
	st, err := store.OpenLocal(opts.StoreDir)
	if err != nil {
		return nil, nil, fmt.Errorf("open store %s: %w", opts.StoreDir, err)
	}
	var others attest.Verifiers
	for _, ref := range opts.TrustedKeys {
		k, err := attest.LoadVerifierKey(ctx, ref)
		if err != nil {
			return nil, nil, fmt.Errorf("trusted key %s: %w", ref, err)
		}
		others = append(others, k)
	}
	keys, err := openKeys(ctx, opts.Key, others)
	if err != nil {
		return nil, nil, err
	}
	runOpts := opts.Runner
	runOpts.Store = st
	if runOpts.WorkRoot == "" {
		runOpts.WorkRoot = filepath.Join(opts.StateDir, "work")
	}
	if err := os.MkdirAll(runOpts.WorkRoot, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state folder: %w", err)
	}
	ex, err := local.New(local.Options{Store: st, StateDir: filepath.Join(opts.StateDir, "executor"),
		MaxConcurrent: opts.Concurrency, GPUs: opts.GPUs, Runner: runOpts, OnEvent: opts.ExecutorEvents})
	if err != nil {
		return nil, nil, err
	}
	recovered, err := ex.Recover(ctx)
	if err != nil {
		// Recovery problems are reported, not fatal: the runs are planned
		// again from the branch anyway.
		err = fmt.Errorf("recover runs of a previous expsync: %w", err)
	}
	if opts.Runner.WorkRoot == "" {
		// <state>/work is this state folder's, whose lock the executor
		// holds: what is there was left by a killed predecessor, whose
		// processes Recover ended.
		if cerr := runner.ClearWorkRoot(runOpts.WorkRoot); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clear the work folders of a previous expsync: %w", cerr))
		}
	}
	builder := opts.BuilderID
	if builder == "" {
		builder = attest.DefaultBuilderID
	}
	l := &Local{Executor: ex, Store: st, opts: opts}
	l.Reconciler = &Reconciler{
		Store: st, Keys: keys, BuilderID: builder, ExecutorName: "local",
		Executor: LocalExecutor{Executor: ex, Meta: func(c contract.Contract) map[string]string {
			return map[string]string{"experiment": c.Experiment}
		}},
		Plan:          render.PlanOptions{StoreURL: "file://" + st.Root()},
		Limits:        results.DefaultLimits,
		BatchInterval: opts.BatchInterval,
		Events:        opts.Events,
	}
	return l, recovered, err
}

// KeyError waits for the signing key (decrypted in the background, see
// openKeys) and says why it cannot be used, or returns nil. A long-running
// caller such as `expsync serve` checks it before serving: the key is
// loaded once, so a key that fails now would fail every reconcile, and
// retrying at each poll would only log the same error forever.
func (l *Local) KeyError() error {
	_, _, err := l.Reconciler.keys()
	return err
}

// Close stops the executor: queued runs are cancelled, running ones get
// until ctx ends to finish.
func (l *Local) Close(ctx context.Context) error {
	return l.Executor.Shutdown(ctx)
}

// Source opens a repository with its Git cache under the state folder.
func (l *Local) Source(repo gitsource.Repository) (*gitsource.Source, error) {
	return gitsource.New(repo, filepath.Join(l.opts.StateDir, "git"))
}

// ErrNotRunnable is returned for a commit that may not run (an untrusted
// ref whose commits are not signed by an allowed key).
var ErrNotRunnable = errors.New("commit may not run")

// ReconcileRef reconciles the commit a poll reported for one ref.
func (l *Local) ReconcileRef(ctx context.Context, src *gitsource.Source, ch gitsource.RefChange) (*Report, error) {
	return RefReconciler{Reconciler: l.Reconciler, Author: l.opts.Author, CommitSigner: l.opts.CommitSigner}.ReconcileRef(ctx, src, ch)
}

// containsRef is the ref whose head must contain the commit that ran: the
// pull request's own ref when results go to a results branch, else the
// branch itself ("").
func containsRef(separate bool, ref string) string {
	if separate {
		return ref
	}
	return ""
}

// TrustedKeys are the public keys whose signed results count (the signing
// key's own and TrustedKeys), for readers of results beside the reconciler
// (pull request reports). It waits for the signing key like KeyError.
func (l *Local) TrustedKeys() (attest.Verifiers, error) {
	_, trusted, err := l.Reconciler.keys()
	return trusted, err
}
