package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/logging"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/reconcile"
)

type serveOptions struct {
	Config string
	// LogFormat is text (key=value lines, the default) or json (one object
	// a line, for a log pipeline).
	LogFormat string
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &serveOptions{}
		cmd := &cobra.Command{
			Use:   "serve --config FILE",
			Short: "Keep polling repositories and run, attest and commit back what is new",
			Long: `Poll the repositories and refs of the configuration file, and reconcile each
ref whose commit moved: run what is new, attest it, commit the results back.
A new commit that edits or deletes an experiment cancels its in-flight runs.
At start, runs left in flight by a killed expsync are ended and then rerun or
recovered from the run cache, never duplicated.

The configuration file (YAML):

  store: /var/lib/expsync/store
  state: /var/lib/expsync/state
  key: /etc/expsync/expsync.key        # passphrase from EXPSYNC_PASSWORD
  interval: 30s
  batchInterval: 10s
  concurrency: 4
  gpus: 0                              # GPUs the runs' requests may add up to
  secretsFile: /etc/expsync/secrets.yaml  # {secret: {key: value}}, after EXPSYNC_SECRET_<NAME>_<KEY>
  # Re-execute a sample of the finished runs of trusted branches from their
  # attestations and commit signed reproduction statements (the same runs
  # for every serve: chosen by run ID); READMEs show the verdicts.
  audit: {fraction: 0.05, perBranch: 1}
  repositories:
    - url: https://git.example/lab/experiments.git
      auth: {usernameEnv: GIT_USER, passwordEnv: GIT_TOKEN}
      refs:
        - {pattern: main, trusted: true}
        - {pattern: "refs/pull/*/head", trusted: false, resultsBranch: "expsync/results/pr-{{number}}"}
      verify: {sshKeyFiles: [/etc/expsync/allowed_signers]}
      # Statuses and one comment per pull request (gitea, forgejo, github,
      # gitlab); the API token comes from $EXPSYNC_FORGE_TOKEN (tokenEnv).
      forge: {kind: gitea, url: https://git.example, repository: lab/experiments}
      # required: true verifies trusted refs too (a ref's first signed head is
      # its baseline, then every new commit is checked); from: [COMMIT] names
      # a signed commit to verify from instead.

Refs that cannot take commits (pull request heads) need a resultsBranch: a
template naming one branch per ref ({{number}}: the pull request number,
{{ref}}: the ref without refs/), created from the ref's commit. A literal
branch on a pattern matching several refs is refused: it would commit one
pull request's results onto another's code. Verify a pull request's results
against its head: expsync verify results/ --key K --repo . --rev <PR head>.`,
			Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return o.Exec(c.Context(), c.ErrOrStderr())
			},
		}
		cmd.Flags().StringVar(&o.Config, "config", "", "configuration file (required)")
		cmd.Flags().StringVar(&o.LogFormat, "log-format", logging.Text, "log format: text (key=value lines) or json (one object a line); keys repository, ref, commit, experiment, runID")
		return cmd
	})
}

// Exec serves until SIGINT or SIGTERM.
func (o *serveOptions) Exec(ctx context.Context, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Config == "" {
		return &exitError{2, errors.New("--config is required")}
	}
	cfg, err := deploy.LoadConfig(o.Config)
	if err != nil {
		return &exitError{2, err}
	}
	if err := errors.Join(deploy.CheckOwnFolder("store:", cfg.Store, deploy.StoreEntries), deploy.CheckOwnFolder("state:", cfg.State, deploy.StateEntries)); err != nil {
		return &exitError{2, fmt.Errorf("%s: %w", o.Config, err)}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	logger, err := serveLogger(stderr, o.LogFormat, cfg)
	if err != nil {
		return &exitError{2, fmt.Errorf("--log-format: %w", err)}
	}
	// review logs printf-style lines of its own (one per pull request
	// report), as one message each.
	logf := func(format string, args ...any) { logger.Info(fmt.Sprintf(format, args...)) }
	reviews := newReviewers()
	opts := cfg.Options()
	opts.Events = func(e reconcile.Event) {
		reviews.event(e)
		log := logger.With(logging.Repository, e.Repository, logging.Ref, e.Ref, logging.Commit, e.Commit)
		switch e.Kind {
		case reconcile.EventRunFinished:
			log.Info("run finished", logging.RunID, e.RunID, logging.Experiment, e.Experiment, "status", e.Status)
		case reconcile.EventCommitted:
			if e.ResultsCommit != "" {
				log.Info("results committed", "runs", e.Runs, "resultsCommit", e.ResultsCommit)
			}
		case reconcile.EventCommitFailed:
			log.Warn("results commit failed; retried with the next batch", "runs", e.Runs, "err", e.Err)
		}
	}
	if cfg.SecretsFile != "" {
		if _, err := runner.FileSecrets(cfg.SecretsFile); err != nil {
			return &exitError{2, fmt.Errorf("%s: secretsFile: %w", o.Config, err)}
		}
	}
	signer, err := deploy.LoadCommitSigner(cfg.CommitSigningKey, os.Getenv("EXPSYNC_COMMIT_KEY_PASSPHRASE"))
	if err != nil {
		return &exitError{2, err}
	}
	opts.CommitSigner = signer.Signer
	d, err := deploy.Open(ctx, opts)
	if d == nil {
		return &exitError{2, err}
	}
	if kerr := d.KeyError(); kerr != nil {
		// Stop at once: every reconcile would fail at its first signature.
		d.Close(context.Background())
		return &exitError{2, fmt.Errorf("%s: %w; fix the key or its passphrase and start serve again", o.Config, kerr)}
	}
	if err != nil {
		logger.Warn("starting", "err", err)
	}
	for _, r := range d.Recovered {
		then := "runs again"
		if r.Result != nil {
			then = "finished; its result is recovered from the run cache"
		}
		logger.Info("run was in flight when expsync stopped", logging.RunID, r.Contract.RunID, logging.Experiment, r.Contract.Experiment, "then", then)
	}
	sources, err := d.Sources(cfg.Repositories, signer.OwnKey)
	if err != nil {
		d.Close(context.Background())
		return &exitError{2, fmt.Errorf("%s: %w", o.Config, err)}
	}
	for i, rc := range cfg.Repositories {
		if rc.Forge == nil {
			continue
		}
		client, err := rc.Forge.Client(rc.URL)
		if err != nil {
			d.Close(context.Background())
			return &exitError{2, fmt.Errorf("%s: repositories[%d]: %w", o.Config, i, err)}
		}
		reviews.add(d.Reconciler, sources[i], client, rc.Forge.Context, logf)
	}
	auditor, err := newAuditor(cfg, opts, d, logger)
	if err != nil {
		d.Close(context.Background())
		return &exitError{2, fmt.Errorf("%s: %w", o.Config, err)}
	}
	auditDone := make(chan struct{})
	if auditor != nil {
		go func() { defer close(auditDone); auditor.Run(ctx) }()
		logger.Info("auditing finished runs of trusted branches", "fraction", cfg.Audit.Fraction)
	} else {
		close(auditDone)
	}
	logger.Info("serving", "repositories", len(sources), "interval", cfg.Interval.Duration, "store", cfg.Store, "state", cfg.State)
	err = d.Refs.Serve(ctx, sources, reconcile.ServeOptions{Interval: cfg.Interval.Duration, Logger: logger, Finished: auditAfter(auditor, reviews.finished)})
	<-auditDone // ctx ended: a reproduction in flight was cancelled
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reviews.close(shutdown)
	if cerr := d.Close(shutdown); cerr != nil {
		logger.Error("shutdown", "err", cerr)
	}
	logger.Info("stopped")
	return err
}

// serveLogger is serve's logger: format to w, with the credentials the
// configuration names (passwords, tokens, the forge's token) and any
// user:password@ of a URL redacted from every line.
func serveLogger(w io.Writer, format string, cfg *deploy.Config) (*slog.Logger, error) {
	l, err := logging.New(w, format, slog.LevelInfo)
	if err != nil {
		return nil, err
	}
	return logging.Redacting(l, cfg.Credentials()), nil
}
