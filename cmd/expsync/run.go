package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/reconcile"
)

// runOptions is `expsync run`: one reconcile of one branch.
type runOptions struct {
	Repo          string
	Branch        string
	Key           string
	TrustedKeys   []string
	Store         string
	State         string
	BatchInterval time.Duration
	Jobs          int
	// GPUs is how many GPUs runs may request in total.
	GPUs int
	// VerifyCommits runs the branch only when its commits are signed by
	// one of CommitKeys: the first time, its signed head is the baseline
	// (the signer vouches for the history beneath, which need not be
	// re-signed); after that every new commit is checked.
	VerifyCommits bool
	CommitKeys    []string
	// VerifyFrom are signed commits accepted as verification baselines
	// (gitsource.VerifyPolicy.From).
	VerifyFrom []string
	Progress   string // auto, bar, plain, none
	AllowHTTP  bool
	// CommitSigningKey signs results commits (an SSH or armored PGP private
	// key file; passphrase from EXPSYNC_COMMIT_KEY_PASSPHRASE).
	CommitSigningKey string
	// SecretsFile is a YAML file {secret: {key: value}} for secretRef
	// variables not set as EXPSYNC_SECRET_<NAME>_<KEY>.
	SecretsFile string
	// GitLimits bounds every Git operation of the run (zero: gitsource's
	// defaults). Not a flag: tests shorten it to prove a stalled server
	// times out.
	GitLimits gitsource.Limits
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &runOptions{}
		cmd := &cobra.Command{
			Use:   "run [REPO]",
			Short: "Run what is new on a branch, attest it and commit the results back",
			Long: `Run one reconcile of a branch: plan its experiments, skip the runs whose
signed results are already in the branch, re-commit those whose results are in
the run cache, run the rest on this machine, attest each run and commit the
results back in batches.

REPO is a remote URL, a bare repository, or a clone (default "."), whose
origin remote is then used: expsync never pushes into a checked-out branch.

Exit codes: 0 done (failed experiments are results too), 1 some runs could not
be executed or committed, or the commit may not run; 2 usage (including a
signing key that cannot be read or decrypted).`,
			Args: cobra.MaximumNArgs(1),
			RunE: func(c *cobra.Command, args []string) error {
				if len(args) == 1 {
					o.Repo = args[0]
				}
				return o.Exec(c.Context(), c.OutOrStdout(), c.ErrOrStderr())
			},
		}
		f := cmd.Flags()
		f.StringVarP(&o.Branch, "branch", "b", "", "branch to reconcile (default: the clone's current branch or the remote's default)")
		f.StringVar(&o.Key, "key", os.Getenv("EXPSYNC_KEY"), "signing key file or KMS URI (env EXPSYNC_KEY; passphrase from EXPSYNC_PASSWORD)")
		f.StringSliceVar(&o.TrustedKeys, "trusted-key", nil, "public key whose signed results count as done (repeatable; the signing key always counts)")
		f.StringVar(&o.Store, "store", deploy.DefaultStoreDir(), "store folder (outputs, logs and the run cache)")
		f.StringVar(&o.State, "state", deploy.DefaultStateDir(), "state folder (Git cache, journal, work folders)")
		f.DurationVar(&o.BatchInterval, "batch-interval", 10*time.Second, "commit finished runs this often")
		f.IntVarP(&o.Jobs, "jobs", "j", 0, "runs at once (default: as many as CPU and memory requests allow)")
		f.IntVar(&o.GPUs, "gpus", 0, "GPUs the runs' requests may add up to (default 0: a run requesting a GPU is refused; runs see every GPU)")
		f.BoolVar(&o.VerifyCommits, "verify-commits", false, "run the branch only if every new commit is signed by a --commit-key (the first time: its signed head, which vouches for the history beneath)")
		f.StringSliceVar(&o.VerifyFrom, "verify-from", nil, "with --verify-commits: full ID of a commit signed by a --commit-key to verify from (moves the branch past an unsigned commit below it)")
		f.StringSliceVar(&o.CommitKeys, "commit-key", nil, "file with an armored PGP key or authorized_keys lines allowed to sign commits")
		f.StringVar(&o.Progress, "progress", "auto", "progress display: auto, bar, plain or none")
		f.BoolVar(&o.AllowHTTP, "allow-http", false, "allow plain http:// remotes (tests, private networks)")
		f.DurationVar(&o.GitLimits.Timeout, "git-timeout", 0, "bound on one Git operation: a poll, a fetch, one push attempt (default 5m)")
		f.DurationVar(&o.GitLimits.IdleTimeout, "git-idle-timeout", 0, "bound on a Git connection making no progress, HTTP(S) and SSH (default 60s)")
		f.StringVar(&o.SecretsFile, "secrets-file", "", "YAML file {secret: {key: value}} for secretRef variables not set as EXPSYNC_SECRET_<NAME>_<KEY>")
		f.StringVar(&o.CommitSigningKey, "commit-signing-key", "", "sign results commits with this SSH or PGP private key file (needed on branches run with --verify-commits)")
		return cmd
	})
}

// Exec runs the reconcile and prints its progress and outcome.
func (o *runOptions) Exec(ctx context.Context, stdout, stderr io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if err := o.checkFlags(); err != nil {
		return &exitError{2, err}
	}
	if err := errors.Join(deploy.CheckOwnFolder("--store", o.Store, deploy.StoreEntries), deploy.CheckOwnFolder("--state", o.State, deploy.StateEntries)); err != nil {
		return &exitError{2, err}
	}
	if o.SecretsFile != "" {
		if _, err := runner.FileSecrets(o.SecretsFile); err != nil {
			return &exitError{2, fmt.Errorf("--secrets-file: %w", err)}
		}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if file := os.Getenv("EXPSYNC_CPUPROFILE"); file != "" {
		// For performance work: a CPU profile of the whole reconcile.
		if f, err := os.Create(file); err == nil {
			_ = pprof.StartCPUProfile(f)
			defer func() { pprof.StopCPUProfile(); f.Close() }()
		}
	}

	target, err := reconcile.ResolveRepository(o.Repo, o.Branch)
	if err != nil {
		return &exitError{2, err}
	}
	creds := deploy.Credentials{Auth: deploy.AuthFromEnvironment()}
	lookup := gitsource.Repository{URL: target.URL, Auth: creds.Auth, URLPolicy: gitsource.URLPolicy{AllowHTTP: o.AllowHTTP},
		Limits: o.GitLimits}
	if target, err = reconcile.WithDefaultBranch(ctx, target, lookup); err != nil {
		return &exitError{defaultBranchExitCode(err), err}
	}
	// Trusted with required verification: the branch is the operator's
	// own, so its signed head may be the baseline the first time; an
	// untrusted ref never takes one.
	rc := deploy.RepositoryConfig{URL: target.URL, AllowHTTP: o.AllowHTTP, Refs: []deploy.RefConfig{{Pattern: target.Branch, Trusted: true}}}
	if o.VerifyCommits {
		rc.Verify = &deploy.VerifyConfig{Required: true, From: o.VerifyFrom}
		if creds.CommitKeys, err = deploy.ReadCommitKeys(o.CommitKeys); err != nil {
			return &exitError{2, err}
		}
	}
	signer, err := deploy.LoadCommitSigner(o.CommitSigningKey, os.Getenv("EXPSYNC_COMMIT_KEY_PASSPHRASE"))
	if err != nil {
		return &exitError{2, err}
	}
	repo, err := rc.Repository(creds, signer.OwnKey)
	if err != nil {
		return &exitError{2, err}
	}
	repo.Limits = o.GitLimits
	prog := newProgress(o.Progress, stderr)
	d, err := deploy.Open(ctx, deploy.Options{
		StoreDir: o.Store, StateDir: o.State, Key: o.Key, TrustedKeys: o.TrustedKeys,
		BatchInterval: o.BatchInterval, Events: prog.event, CommitSigner: signer.Signer,
		Local: deploy.LocalOptions{Concurrency: o.Jobs, GPUs: o.GPUs, Runner: runner.Options{SecretsFile: o.SecretsFile}},
	})
	if d == nil {
		return &exitError{2, err}
	}
	if err != nil {
		fmt.Fprintln(stderr, "expsync: warning:", err)
	}
	defer d.Close(context.Background())

	src, err := d.Source(repo)
	if err != nil {
		return &exitError{2, err}
	}
	fmt.Fprintf(stdout, "repository %s (%s), branch %s\n", src.URL(), target.Via, target.Branch)
	var rep *reconcile.Report
	// A branch force-pushed during the runs to a history without the
	// commit that ran takes none of its results (they stay in the run
	// cache): its new head is reconciled as a new commit, recovering the
	// runs it plans, a bounded number of times.
	for attempt := 1; ; attempt++ {
		changes, err := src.Poll(ctx)
		if err != nil {
			return &exitError{1, err}
		}
		var change *gitsource.RefChange
		for i := range changes {
			if changes[i].Ref == "refs/heads/"+target.Branch && !changes[i].Deleted() {
				change = &changes[i]
			}
		}
		if change == nil {
			return &exitError{1, fmt.Errorf("branch %s not found in %s", target.Branch, src.URL())}
		}
		rep, err = d.Refs.ReconcileRef(ctx, src, *change)
		if errors.Is(err, reconcile.ErrHistoryRewritten) && attempt < 3 && ctx.Err() == nil {
			fmt.Fprintf(stdout, "branch %s was force-pushed during the runs of %s to a history without it: their results stay in the run cache; reconciling its new head\n",
				target.Branch, contract.ShortID(rep.Commit))
			// The next poll reports the branch whatever its head.
			observed := src.Observed()
			delete(observed, "refs/heads/"+target.Branch)
			src.SetObserved(observed)
			continue
		}
		return o.finish(ctx, stdout, prog, target.Branch, rep, err)
	}
}

// finish prints the report of the last reconcile and maps its error to
// the exit code.
func (o *runOptions) finish(ctx context.Context, stdout io.Writer, prog *progress, branch string, rep *reconcile.Report, err error) error {
	prog.finish()
	printReport(stdout, branch, rep, err)
	if ctx.Err() != nil {
		return &exitError{1, interrupted(rep, err)}
	}
	if errors.Is(err, reconcile.ErrSigningKey) {
		// Decrypted while the first runs went on, the key failed late, but
		// the operator fixes it like a missing key file: a usage error.
		return &exitError{2, err}
	}
	if err != nil {
		return &exitError{1, err}
	}
	return nil
}

// defaultBranchExitCode: a URL refused by policy or a server that names no
// default branch is a usage error (fix the URL or pass --branch); a server
// that cannot be reached, refuses the credentials or is empty fails like a
// poll (exit 1).
func defaultBranchExitCode(err error) int {
	if errors.Is(err, gitsource.ErrUnsafeURL) || errors.Is(err, gitsource.ErrRefNotFound) {
		return 2
	}
	return 1
}

// progressModes are the values of --progress.
var progressModes = []string{"auto", "bar", "plain", "none"}

// checkFlags refuses flag values that make no sense, naming what is allowed.
func (o *runOptions) checkFlags() error {
	switch {
	case o.Key == "":
		return errors.New("--key is required (make one with `expsync keygen`)")
	case o.GPUs < 0:
		return fmt.Errorf("--gpus %d: give the number of GPUs runs may use at once, or 0", o.GPUs)
	case o.Jobs < 0:
		return fmt.Errorf("--jobs %d: give a positive number of runs at once, or 0 for as many as the CPU and memory requests allow", o.Jobs)
	case o.GitLimits.Timeout < 0 || o.GitLimits.IdleTimeout < 0:
		return fmt.Errorf("--git-timeout %s, --git-idle-timeout %s: give positive durations such as 10m and 1m, or 0 for the defaults", o.GitLimits.Timeout, o.GitLimits.IdleTimeout)
	case o.BatchInterval <= 0:
		return fmt.Errorf("--batch-interval %s: give a positive duration such as 10s or 1m", o.BatchInterval)
	case o.VerifyCommits && len(o.CommitKeys) == 0:
		return errors.New("--verify-commits needs at least one --commit-key")
	case len(o.VerifyFrom) > 0 && !o.VerifyCommits:
		return errors.New("--verify-from needs --verify-commits (and a --commit-key that signed the commit)")
	case !slices.Contains(progressModes, o.Progress):
		return fmt.Errorf("--progress %q: use one of %s", o.Progress, strings.Join(progressModes, ", "))
	}
	return nil
}

// interrupted is the error of a reconcile that SIGINT/SIGTERM ended: never
// a success, however much finished.
func interrupted(rep *reconcile.Report, err error) error {
	n := 0
	if rep != nil {
		n = rep.Cancelled
	}
	msg := fmt.Sprintf("interrupted: %d %s not finished, run again to resume", n, plural(n, "run", "runs"))
	if err != nil && !errors.Is(err, context.Canceled) {
		return fmt.Errorf("%s: %w", msg, err)
	}
	return errors.New(msg)
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// printReport summarises a reconcile on stdout; err (the reconcile's error)
// keeps it from claiming what did not happen.
func printReport(w io.Writer, branch string, rep *reconcile.Report, err error) {
	if rep == nil {
		return
	}
	if err != nil && rep.Planned == 0 {
		return // planning failed: the error says why
	}
	if errors.Is(err, reconcile.ErrSigningKey) && rep.Executed+rep.Recovered+rep.Cancelled == 0 && len(rep.Commits) == 0 {
		return // stopped before any run was decided: the key error says why
	}
	if rep.Planned == 0 && rep.Commit != "" {
		fmt.Fprintf(w, "commit %s plans no runs\n", contract.ShortID(rep.Commit))
		return
	}
	if rep.NothingToDo() && err == nil {
		fmt.Fprintf(w, "nothing to do: all %d runs of commit %s are already committed and verified\n", rep.Planned, contract.ShortID(rep.Commit))
		return
	}
	fmt.Fprintf(w, "commit %s: %d runs planned, %d already done, %d executed, %d recovered from the run cache (%d succeeded, %d failed",
		contract.ShortID(rep.Commit), rep.Planned, rep.Done, rep.Executed, rep.Recovered, rep.Succeeded, rep.Failed)
	if rep.Cancelled > 0 {
		fmt.Fprintf(w, ", %d not finished", rep.Cancelled)
	}
	fmt.Fprintln(w, ")")
	for _, u := range rep.Untrusted {
		fmt.Fprintf(w, "  %s did not verify (forged, copied or edited): replaced\n", u)
	}
	switch len(rep.Commits) {
	case 0:
		if err != nil && rep.Executed+rep.Recovered > 0 {
			fmt.Fprintln(w, "no results commit: finished results are kept in the run cache and committed by the next run (see the error)")
		} else if err == nil {
			fmt.Fprintln(w, "no results commit (nothing changed on the branch)")
		}
	default:
		for _, c := range rep.Commits[:len(rep.Commits)-1] {
			fmt.Fprintf(w, "results commit %s\n", c)
		}
		fmt.Fprintf(w, "results commit %s pushed to %s\n", rep.Commits[len(rep.Commits)-1], branch)
	}
}

// progress shows finished runs: a bar on a terminal, plain lines otherwise.
type progress struct {
	w     io.Writer
	mode  string
	bar   *progressbar.ProgressBar
	total int
	done  int
}

func newProgress(mode string, w io.Writer) *progress {
	if mode == "auto" {
		mode = "plain"
		if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
			mode = "bar"
		}
	}
	return &progress{w: w, mode: mode}
}

func (p *progress) event(e reconcile.Event) {
	if p.mode == "none" {
		return
	}
	switch e.Kind {
	case reconcile.EventPlanned:
		p.total = e.Recover + e.Execute
		if p.total == 0 {
			return // the summary says "nothing to do"
		}
		fmt.Fprintf(p.w, "commit %s: %d runs planned, %d already done, %d to recover from the run cache, %d to run\n",
			contract.ShortID(e.Commit), e.Planned, e.Done, e.Recover, e.Execute)
		if p.mode == "bar" && p.total > 0 {
			p.bar = progressbar.NewOptions(p.total, progressbar.OptionSetWriter(p.w), progressbar.OptionSetDescription("running"),
				progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionClearOnFinish(),
				progressbar.OptionThrottle(100*time.Millisecond))
		}
	case reconcile.EventRunFinished:
		p.done++
		how := e.Status
		if e.Recovered {
			how += " (from the run cache)"
		}
		if p.bar != nil {
			p.bar.Describe(fmt.Sprintf("%s %s", e.Experiment, how))
			_ = p.bar.Add(1)
			if e.Reason != "" && e.Status != "Succeeded" {
				_ = p.bar.Clear()
				fmt.Fprintf(p.w, "run %s of %s: %s: %s\n", contract.ShortID(e.RunID), e.Experiment, e.Status, firstLine(e.Reason))
			}
			return
		}
		line := fmt.Sprintf("[%d/%d] %s %s %s", p.done, p.total, contract.ShortID(e.RunID), e.Experiment, how)
		if e.Duration > 0 {
			line += " " + e.Duration.Round(time.Millisecond).String()
		}
		if e.Reason != "" && e.Status != "Succeeded" {
			line += ": " + firstLine(e.Reason)
		}
		fmt.Fprintln(p.w, line)
	case reconcile.EventCommitted:
		if p.bar != nil {
			_ = p.bar.Clear()
		}
		if e.ResultsCommit != "" {
			fmt.Fprintf(p.w, "committed %d runs: %s\n", e.Runs, e.ResultsCommit)
		}
	case reconcile.EventCommitFailed:
		if p.bar != nil {
			_ = p.bar.Clear()
		}
		fmt.Fprintf(p.w, "commit of %d runs failed, retrying with the next batch: %v\n", e.Runs, e.Err)
	}
}

func (p *progress) finish() {
	if p.bar != nil {
		_ = p.bar.Finish()
	}
}

func firstLine(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		s = s[:i] + " …"
	}
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
