package main

import (
	"log/slog"
	"path/filepath"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/audit"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/reconcile"
)

// newAuditor builds serve's audit sampling from the configuration's audit
// section: reproductions run on the deployment's executor (sharing the
// machine with the runs), their statements are signed with its key and
// committed with its author and commit signer. nil when the configuration
// has no audit.
func newAuditor(cfg *deploy.Config, opts deploy.Options, d *deploy.Deployment, logger *slog.Logger) (*audit.Auditor, error) {
	if cfg.Audit == nil {
		return nil, nil
	}
	mem, _ := local.MemAvailable()
	a := audit.Options{
		Fraction: cfg.Audit.Fraction, PerBranch: cfg.Audit.PerBranch,
		Keys:      func() (*attest.Signer, attest.Verifiers, error) { return d.Reconciler.Keys() },
		BuilderID: d.Reconciler.BuilderID, Store: d.Store, StateDir: filepath.Join(cfg.State, "audit"),
		GPUs: cfg.GPUs, MemoryBytes: mem, Runner: runner.Options{SecretsFile: cfg.SecretsFile},
		Author: opts.Author, CommitSigner: opts.CommitSigner, Logger: logger,
	}
	if d.Local != nil {
		a.Execute = d.Local.ExecuteFresh
	}
	return audit.New(a)
}

// auditAfter is serve's Finished hook for the audit: a reconcile that
// finished on a trusted branch holding its own results asks for an audit of
// that branch. The audit's own statements commit moves the branch, whose
// reconcile (nothing to run) asks for the next audit, until every sampled
// run carries a statement.
func auditAfter(a *audit.Auditor, next func(*gitsource.Source, gitsource.RefChange, *reconcile.Report, error)) func(*gitsource.Source, gitsource.RefChange, *reconcile.Report, error) {
	return func(src *gitsource.Source, ch gitsource.RefChange, rep *reconcile.Report, err error) {
		if next != nil {
			next(src, ch, rep, err)
		}
		if a == nil || err != nil || ch.Deleted() {
			return
		}
		p, ok := src.Repository().PolicyFor(ch.Ref)
		if !ok || !p.Trusted || p.ResultsBranch != "" {
			return
		}
		if branch, err := src.Repository().ResultsBranchFor(ch.Ref); err == nil {
			a.Request(src, branch)
		}
	}
}
