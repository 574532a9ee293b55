package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/go-git/go-git/v5"
	"github.com/spf13/cobra"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/reproduce"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
)

// reproduceOptions is `expsync reproduce`: execute committed runs again
// from their attestations and compare.
type reproduceOptions struct {
	Paths      []string
	Keys       []string
	BuilderIDs []string
	Repo       string
	Store      string
	State      string
	Write      bool
	SigningKey string
	Output     string
	Progress   string
	GPUs       int
	Secrets    string
	AllowHTTP  bool
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &reproduceOptions{}
		cmd := &cobra.Command{
			Use:   "reproduce PATH... --key PUB [--repo DIR|URL] [--store DIR] [--write --signing-key KEY] [-o text|json]",
			Short: "Execute committed runs again from their attestations and compare them bit for bit",
			Long: `Reproduce committed runs. PATH is a run folder (results/<experiment>/<run-id>/)
or a folder of them. For each run:

  1. its attestation is verified with the trusted --key files, signature
     first; a folder that does not verify is never executed;
  2. the run contract is rebuilt from the attested material alone (the
     identity in run.json, the context tree and inputs the statement names),
     never from the experiment files as they are now, and the run ID
     recomputed from it must be the attested one;
  3. what it needs is checked before anything runs: the context tree by ID
     in --repo (default: the Git repository holding PATH; a URL is fetched
     into --state), each input by digest in --store or from its URL, the
     GPUs (--gpus), memory, secrets and disk it needs;
  4. it executes once, afresh (never from the run cache);
  5. the exit status, every output and every metric are compared with the
     attested ones, judged by the tolerances the attested experiment file
     declared (spec.reproduce; without them everything must be identical).

--write records a signed reproduction statement (in-toto, predicate type
https://expsync.dev/reproduction/v1) in the run folder's reproductions/,
signed with --signing-key; commit it like any results file.

Exit codes: 0 every run reproduced (identical, or within its tolerances), 1
any differs, was refused or could not be reproduced here (each says why), 2
usage.`,
			Args: cobra.ArbitraryArgs,
			RunE: func(c *cobra.Command, args []string) error {
				o.Paths = args
				return o.Exec(c.Context(), c.OutOrStdout(), c.ErrOrStderr())
			},
		}
		f := cmd.Flags()
		f.StringArrayVar(&o.Keys, "key", nil, "trusted public key file or KMS URI the runs must be signed with (repeatable)")
		f.StringArrayVar(&o.BuilderIDs, "builder-id", nil, "accepted builder ID of the runs (repeatable; default: any)")
		f.StringVar(&o.Repo, "repo", "", "Git repository holding the runs' trees: a clone, a bare repository or a URL (default: the repository holding PATH)")
		f.StringVar(&o.Store, "store", deploy.DefaultStoreDir(), "store folder: inputs by digest, the reproduced outputs")
		f.StringVar(&o.State, "state", deploy.DefaultStateDir(), "state folder (the Git cache of a --repo URL)")
		f.BoolVar(&o.Write, "write", false, "write a signed reproduction statement into each run folder's reproductions/")
		f.StringVar(&o.SigningKey, "signing-key", os.Getenv("EXPSYNC_KEY"), "with --write: the key that signs the statements (env EXPSYNC_KEY; passphrase from EXPSYNC_PASSWORD)")
		f.StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
		f.StringVar(&o.Progress, "progress", "auto", "progress on stderr: auto, plain or none")
		f.IntVar(&o.GPUs, "gpus", 0, "GPUs this machine offers the runs (default 0: a run requesting a GPU cannot be reproduced)")
		f.StringVar(&o.Secrets, "secrets-file", "", "YAML file {secret: {key: value}} for secretRef variables not set as EXPSYNC_SECRET_<NAME>_<KEY>")
		f.BoolVar(&o.AllowHTTP, "allow-http", false, "allow a plain http:// --repo URL (tests, private networks)")
		return cmd
	})
}

// reproduceResult is one run's outcome as the output prints it.
type reproduceResult struct {
	*reproduce.Outcome
	// Statement is the written statement's path (--write).
	Statement string
}

// Exec reproduces every run folder below the PATHs.
func (o *reproduceOptions) Exec(ctx context.Context, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.checkFlags(); err != nil {
		return &exitError{2, err}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	folder, err := o.policy(ctx)
	if err != nil {
		return &exitError{2, err}
	}
	var signer *attest.Signer
	if o.Write {
		if signer, err = attest.LoadSigner(ctx, o.SigningKey); err != nil {
			return &exitError{2, fmt.Errorf("--signing-key: %w", err)}
		}
	}
	st, err := store.OpenLocal(o.Store)
	if err != nil {
		return &exitError{2, fmt.Errorf("--store: %w", err)}
	}
	targets, missing := findAttestations(o.Paths)
	objects, repoName, release, err := o.objects(ctx)
	if err != nil {
		return &exitError{1, err}
	}
	defer release()
	mem, _ := local.MemAvailable()
	// Attempt folders of its own: `expsync run` clears <state>/work when it
	// starts, which must never take a reproduction's folder.
	state, err := filepath.Abs(o.State)
	if err != nil {
		return &exitError{2, fmt.Errorf("--state: %w", err)}
	}
	workRoot := filepath.Join(state, "reproduce", "work")
	defer runner.DropPool(workRoot) // attempt folders are removed before exit, interrupted or not
	opts := reproduce.Options{
		Folder: folder,
		Machine: reproduce.Machine{Store: st, Objects: objects, RepoName: repoName, GPUs: o.GPUs, MemoryBytes: mem,
			Runner: runner.Options{SecretsFile: o.Secrets, WorkRoot: workRoot}},
		Progress: newReproduceProgress(o.Progress, stderr, len(targets)).event,
	}
	var out []reproduceResult
	for _, m := range missing {
		out = append(out, reproduceResult{Outcome: &reproduce.Outcome{Path: m.path, Refused: errors.New(m.reason)}})
	}
	for _, t := range targets {
		dir := t.path
		if !t.folder {
			dir = filepath.Dir(dir)
		}
		opts.Folder.Experiment = t.experiment
		res, err := reproduce.Reproduce(ctx, dir, opts)
		if err != nil && ctx.Err() != nil {
			return &exitError{1, fmt.Errorf("interrupted while reproducing %s: its processes were ended and nothing was recorded", dir)}
		}
		if err != nil {
			return &exitError{1, fmt.Errorf("%s: %w", dir, err)}
		}
		r := reproduceResult{Outcome: res}
		if signer != nil && res.Reproduction != nil {
			if r.Statement, err = reproduce.Write(res, signer); err != nil {
				return &exitError{1, fmt.Errorf("%s: write the reproduction statement: %w", dir, err)}
			}
		}
		out = append(out, r)
	}
	if err := o.print(stdout, out); err != nil {
		return err
	}
	failed := 0
	for _, r := range out {
		if !r.OK() {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{1, fmt.Errorf("%d of %d runs did not reproduce", failed, len(out))}
	}
	return nil
}

func (o *reproduceOptions) checkFlags() error {
	switch {
	case len(o.Paths) == 0:
		return errors.New("give at least one PATH: a run folder (results/<experiment>/<run-id>/) or a folder of them")
	case len(o.Keys) == 0:
		return errors.New("give the public key the runs were signed with (--key), to verify them before anything runs")
	case o.Output != "text" && o.Output != "json":
		return fmt.Errorf("-o %q: use text or json", o.Output)
	case o.Progress != "auto" && o.Progress != "plain" && o.Progress != "none":
		return fmt.Errorf("--progress %q: use auto, plain or none", o.Progress)
	case o.GPUs < 0:
		return fmt.Errorf("--gpus %d: give the number of GPUs, or 0", o.GPUs)
	case o.Write && o.SigningKey == "":
		return errors.New("--write needs --signing-key (or EXPSYNC_KEY): the key that signs the reproduction statements")
	}
	if err := checkPaths(o.Paths); err != nil {
		return err
	}
	if err := deploy.CheckOwnFolder("--store", o.Store, deploy.StoreEntries); err != nil {
		return err
	}
	if o.Secrets != "" {
		if _, err := runner.FileSecrets(o.Secrets); err != nil {
			return fmt.Errorf("--secrets-file: %w", err)
		}
	}
	return nil
}

// policy loads the trusted keys.
func (o *reproduceOptions) policy(ctx context.Context) (attest.FolderOptions, error) {
	var opts attest.FolderOptions
	for _, ref := range o.Keys {
		k, err := attest.LoadVerifierKey(ctx, ref)
		if err != nil {
			return opts, err
		}
		opts.Keys = append(opts.Keys, k)
	}
	opts.BuilderIDs = o.BuilderIDs
	opts.Store = attest.StoreDir(o.Store)
	return opts, nil
}

// objects opens the repository's Git objects: --repo (a folder or a URL),
// or the repository holding the first PATH. No repository is not an error
// here: the run that needs one says so.
func (o *reproduceOptions) objects(ctx context.Context) (*reproduce.Objects, string, func(), error) {
	nothing := func() {}
	repo := o.Repo
	if repo == "" {
		r, err := git.PlainOpenWithOptions(o.Paths[0], &git.PlainOpenOptions{DetectDotGit: true})
		if err != nil {
			return nil, "", nothing, nil
		}
		return reproduce.NewObjects(r.Storer), "the repository holding " + o.Paths[0], nothing, nil
	}
	if info, err := os.Stat(repo); err == nil && info.IsDir() {
		// A bare repository first: DetectDotGit looks only for a .git
		// folder (here or above) and so never finds one.
		r, err := git.PlainOpen(repo)
		if err != nil {
			r, err = git.PlainOpenWithOptions(repo, &git.PlainOpenOptions{DetectDotGit: true})
		}
		if err != nil {
			return nil, "", nothing, fmt.Errorf("--repo %s: %w", repo, err)
		}
		return reproduce.NewObjects(r.Storer), repo, nothing, nil
	}
	if !strings.Contains(repo, "://") && !strings.Contains(repo, "@") {
		return nil, "", nothing, fmt.Errorf("--repo %s: not a folder, and not a URL", repo)
	}
	src, err := gitsource.New(gitsource.Repository{URL: repo, Auth: deploy.AuthFromEnvironment(), Refs: []gitsource.RefPolicy{{Pattern: "*"}},
		URLPolicy: gitsource.URLPolicy{AllowHTTP: o.AllowHTTP}}, filepath.Join(o.State, "reproduce", "git"))
	if err != nil {
		return nil, "", nothing, fmt.Errorf("--repo: %w", err)
	}
	objs, release, err := src.History(ctx)
	if err != nil {
		return nil, "", nothing, fmt.Errorf("--repo: %w", err)
	}
	return reproduce.NewObjects(objs), src.URL(), release, nil
}
