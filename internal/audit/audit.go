// Package audit is serve's audit sampling: it re-executes a deterministic
// sample of the finished runs committed to a watched branch from their
// attestations alone (package reproduce), commits a signed reproduction
// statement for each into the run's folder, and lets the experiment's
// README show which runs were reproduced and with what verdict.
//
// The sample is reproduce.Sampled(runID, Fraction): every serve process
// agrees on it without talking to the others, and a run already carrying a
// statement signed by this deployment's key is not reproduced again, so
// two processes auditing one branch at once cost at most one duplicate
// statement, never a wrong one.
package audit

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/logging"
	"github.com/expsync/expsync/internal/reproduce"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// Options configure an Auditor.
type Options struct {
	// Fraction of the finished runs re-executed (0 < Fraction <= 1).
	Fraction float64
	// PerBranch bounds the runs reproduced per audit of a branch (default
	// 1): an audit runs between polls and must not hold a machine's
	// capacity for long.
	PerBranch int
	// Keys returns the deployment's signer (whose statements mark a run as
	// audited) and the keys runs must be signed with.
	Keys func() (*attest.Signer, attest.Verifiers, error)
	// BuilderID names the reproducing builder in statements.
	BuilderID string
	// Store holds inputs by digest and receives the reproduced outputs.
	Store *store.Local
	// StateDir is where the audit keeps each repository's whole history
	// (for trees by ID) and its work folders.
	StateDir string
	// GPUs, CPUs and MemoryBytes bound what a reproduced run may request.
	GPUs        int
	CPUs        float64
	MemoryBytes int64
	// Runner tunes the runner (secrets file...); WorkRoot is the audit's.
	Runner runner.Options
	// Execute runs a contract once, afresh (never the run cache); nil runs
	// it with the runner directly.
	Execute func(ctx context.Context, c contract.Contract) (*contract.Result, error)
	// Author and Signer of the commits of statements.
	Author       gitsource.Signature
	CommitSigner gitsource.Signer
	// Summaries verify the run folders the READMEs count (reconcile's
	// check, cached); nil verifies with attest against Keys.
	Verify func(r tree.Reader, dir, experiment string) error
	// Logger receives one record per reproduction and per problem, with
	// the keys of internal/logging (nil: none).
	Logger *slog.Logger
	// Retry is how long a run that could not be reproduced here waits
	// before it is tried again (default 1h).
	Retry time.Duration
}

// Auditor audits the branches it is asked to, one at a time.
type Auditor struct {
	opts    Options
	mu      sync.Mutex
	pending map[string]request // by repository and branch
	wake    chan struct{}
	held    map[string]time.Time // run ID → when it may be tried again
	history map[string]*gitsource.Source
}

type request struct {
	src    *gitsource.Source
	branch string
}

// New makes an Auditor; Run starts it.
func New(opts Options) (*Auditor, error) {
	switch {
	case !(opts.Fraction > 0 && opts.Fraction <= 1): // NaN too
		return nil, fmt.Errorf("audit fraction %v: give a fraction of runs above 0 and at most 1 (0.05 reproduces one run in twenty)", opts.Fraction)
	case opts.Keys == nil || opts.Store == nil || opts.StateDir == "":
		return nil, errors.New("audit: keys, store and state folder are required")
	}
	if opts.PerBranch <= 0 {
		opts.PerBranch = 1
	}
	if opts.Retry <= 0 {
		opts.Retry = time.Hour
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Author.Name == "" {
		opts.Author = gitsource.Signature{Name: "expsync", Email: "expsync@localhost"}
	}
	if opts.Runner.WorkRoot == "" {
		opts.Runner.WorkRoot = filepath.Join(opts.StateDir, "work")
	}
	return &Auditor{opts: opts, pending: map[string]request{}, wake: make(chan struct{}, 1),
		held: map[string]time.Time{}, history: map[string]*gitsource.Source{}}, nil
}

// Request asks for an audit of branch of src; requests for a branch
// already pending are merged. It never blocks (serve calls it when a
// reconcile finished).
func (a *Auditor) Request(src *gitsource.Source, branch string) {
	a.mu.Lock()
	a.pending[src.URL()+"\x00"+branch] = request{src: src, branch: branch}
	a.mu.Unlock()
	select {
	case a.wake <- struct{}{}:
	default:
	}
}

// Run audits the requested branches until ctx ends.
func (a *Auditor) Run(ctx context.Context) {
	defer runner.DropPool(a.opts.Runner.WorkRoot)
	for {
		select {
		case <-ctx.Done():
			return
		case <-a.wake:
		}
		for {
			req, ok := a.next()
			if !ok || ctx.Err() != nil {
				break
			}
			if err := a.Audit(ctx, req.src, req.branch); err != nil && ctx.Err() == nil {
				a.opts.Logger.Warn("audit failed", logging.Repository, req.src.URL(), logging.Ref, req.branch, "error", err)
			}
		}
	}
}

func (a *Auditor) next() (request, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	keys := make([]string, 0, len(a.pending))
	for k := range a.pending {
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return request{}, false
	}
	sort.Strings(keys)
	req := a.pending[keys[0]]
	delete(a.pending, keys[0])
	return req, true
}

// Audit reproduces up to PerBranch sampled runs of branch that carry no
// statement by this deployment's key yet, and commits their statements.
func (a *Auditor) Audit(ctx context.Context, src *gitsource.Source, branch string) error {
	signer, trusted, err := a.opts.Keys()
	if err != nil {
		return err
	}
	snap, err := src.Snapshot(ctx, branch, "")
	if err != nil {
		return err
	}
	defer snap.Close()
	layout := results.Layout{Root: resultsRoot(snap)}
	due, err := a.due(snap, layout, signer)
	if err != nil || len(due) == 0 {
		return err
	}
	objects, release, err := a.objects(ctx, src)
	if err != nil {
		return fmt.Errorf("fetch the history for trees by ID: %w", err)
	}
	defer release()
	statements := map[string][]byte{}
	var verdicts []string
	for _, f := range due {
		name, data, verdict, err := a.reproduce(ctx, snap, f, objects, trusted, signer)
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			a.hold(f.runID)
			a.opts.Logger.Warn("audit: run not reproduced", logging.RunID, f.runID, logging.Experiment, f.experiment,
				"retryIn", a.opts.Retry.String(), "error", err)
			continue
		}
		statements[path.Join(f.dir, attest.ReproductionsDir, name)] = data
		verdicts = append(verdicts, verdict)
		a.opts.Logger.Info("audit: run reproduced", logging.RunID, f.runID, logging.Experiment, f.experiment, "verdict", verdict)
	}
	if len(statements) == 0 {
		return nil
	}
	return a.commit(ctx, src, branch, layout, statements, verdicts, trusted)
}

// folder is a run folder of the branch.
type folder struct{ dir, experiment, runID string }

// due lists the sampled run folders of the branch without a statement by
// signer, not held, at most PerBranch, in run ID order.
func (a *Auditor) due(snap tree.Reader, layout results.Layout, signer *attest.Signer) ([]folder, error) {
	own, err := attest.NewKey("deployment", signer.Public())
	if err != nil {
		return nil, err
	}
	exps, err := snap.ReadDir(layout.ExperimentDir(""))
	if errors.Is(err, tree.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []folder
	for _, e := range exps {
		if !e.IsDir() {
			continue
		}
		runs, err := snap.ReadDir(layout.ExperimentDir(e.Name))
		if err != nil {
			return nil, err
		}
		for _, r := range runs {
			if !r.IsDir() || !isRunID(r.Name) || !reproduce.Sampled(r.Name, a.opts.Fraction) || a.isHeld(r.Name) {
				continue
			}
			dir := layout.RunDir(e.Name, r.Name)
			files, err := attest.VerifyTreeReproductions(snap, dir, attest.FolderOptions{Keys: attest.Verifiers{own}})
			if err != nil {
				return nil, err
			}
			if ours(files) {
				continue
			}
			out = append(out, folder{dir: dir, experiment: e.Name, runID: r.Name})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].runID < out[j].runID })
	if len(out) > a.opts.PerBranch {
		out = out[:a.opts.PerBranch]
	}
	return out, nil
}

func ours(files []attest.ReproductionFile) bool {
	for _, f := range files {
		if f.OK {
			return true
		}
	}
	return false
}

func (a *Auditor) isHeld(runID string) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	until, ok := a.held[runID]
	return ok && time.Now().Before(until)
}

func (a *Auditor) hold(runID string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.held[runID] = time.Now().Add(a.opts.Retry)
}

// reproduce reproduces one run folder of the snapshot and signs the
// statement; an error says why there is no verdict.
func (a *Auditor) reproduce(ctx context.Context, snap tree.Reader, f folder, objects *reproduce.Objects, trusted attest.Verifiers, signer *attest.Signer) (name string, data []byte, verdict string, err error) {
	m, err := reproduce.LoadTree(snap, f.dir, attest.FolderOptions{Keys: trusted, Experiment: f.experiment, SkipReproductions: true})
	if err != nil {
		return "", nil, "", err
	}
	opts := reproduce.Options{
		Folder:    attest.FolderOptions{Keys: trusted},
		BuilderID: a.opts.BuilderID,
		Machine: reproduce.Machine{Store: a.opts.Store, Objects: objects, RepoName: "the repository's history",
			GPUs: a.opts.GPUs, CPUs: a.opts.CPUs, MemoryBytes: a.opts.MemoryBytes, Runner: a.opts.Runner},
		Execute: a.opts.Execute,
	}
	out, err := reproduce.ReproduceMaterial(ctx, m, opts)
	switch {
	case err != nil:
		return "", nil, "", err
	case out.Refused != nil:
		return "", nil, "", out.Refused
	case len(out.Problems) > 0:
		return "", nil, "", fmt.Errorf("cannot be reproduced here: %v", out.Problems)
	case out.Failed != "":
		return "", nil, "", errors.New(out.Failed)
	}
	name, data, err = reproduce.Sign(out, signer)
	return name, data, out.Reproduction.Verdict, err
}

// objects fetches the repository's whole history into the audit's own
// cache (incrementally after the first time): the context trees runs name,
// whatever the branch heads hold now.
func (a *Auditor) objects(ctx context.Context, src *gitsource.Source) (*reproduce.Objects, func(), error) {
	a.mu.Lock()
	hist, ok := a.history[src.URL()]
	if !ok {
		var err error
		hist, err = gitsource.New(src.Repository(), filepath.Join(a.opts.StateDir, "git"))
		if err != nil {
			a.mu.Unlock()
			return nil, nil, err
		}
		a.history[src.URL()] = hist
	}
	a.mu.Unlock()
	objs, release, err := hist.History(ctx)
	if err != nil {
		return nil, nil, err
	}
	return reproduce.NewObjects(objs), release, nil
}

// commit adds the statements to the branch in one commit; the merge runs on
// the head the push goes to, so a run folder replaced meanwhile drops its
// statement, and the READMEs are regenerated from that head.
func (a *Auditor) commit(ctx context.Context, src *gitsource.Source, branch string, layout results.Layout, statements map[string][]byte, verdicts []string, trusted attest.Verifiers) error {
	verify := a.opts.Verify
	if verify == nil {
		verify = func(r tree.Reader, dir, experiment string) error {
			_, err := attest.VerifyTreeFolder(r, dir, attest.FolderOptions{Keys: trusted, Experiment: experiment, SkipReproductions: true})
			return err
		}
	}
	mergeOpts := results.MergeOptions{
		Verify: verify,
		Reproductions: func(r tree.Reader, runDir string) []results.Reproduction {
			return reconcile.ListReproductions(r, runDir, trusted)
		},
	}
	msg := fmt.Sprintf("expsync: audit reproduced %d run(s): %s", len(verdicts), joinCounts(verdicts))
	_, err := src.CommitBack(ctx, gitsource.CommitRequest{Branch: branch, Files: statements, Message: msg, Author: a.opts.Author, Signer: a.opts.CommitSigner},
		func(base tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
			changes, _, err := layout.AddReproductions(base, ours, mergeOpts)
			return map[string][]byte(changes), err
		})
	return err
}

func joinCounts(verdicts []string) string {
	counts := map[string]int{}
	for _, v := range verdicts {
		counts[v]++
	}
	var parts []string
	for _, v := range []string{attest.VerdictIdentical, attest.VerdictReproduced, attest.VerdictDiffers} {
		if counts[v] > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", counts[v], v))
		}
	}
	return fmt.Sprint(parts)
}

// resultsRoot reads the results folder from the branch's expsync.yaml
// (default "results").
func resultsRoot(snap tree.Reader) string {
	data, err := snap.ReadFile("expsync.yaml", 1<<20)
	if err != nil {
		return results.DefaultRoot
	}
	var cfg struct {
		Results string `yaml:"results"`
	}
	if yaml.Unmarshal(data, &cfg) != nil || cfg.Results == "" {
		return results.DefaultRoot
	}
	if clean, err := tree.Clean(cfg.Results); err == nil && clean != "" {
		return clean
	}
	return results.DefaultRoot
}

func isRunID(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	return true
}
