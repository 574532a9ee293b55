package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/diff"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// diffOptions is `expsync diff`: compare the verified results of two
// revisions of a clone (or of two folders).
type diffOptions struct {
	Base, Head string
	// Repo is the repository revisions are read from (default ".").
	Repo string
	Keys []string
	// MergeBase compares Head with the merge base of Base and Head (what a
	// pull request from Head into Base changes); BASE...HEAD says the same.
	MergeBase bool
	// BaseResults and HeadResults are revisions holding a side's results
	// when they are not on the code's revision (a pull request's results
	// branch).
	BaseResults, HeadResults string
	Output                   string
	Mode                     string
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &diffOptions{}
		cmd := &cobra.Command{
			Use:   "diff BASE HEAD --key PUB [--repo DIR] [--merge-base] [--head-results REV] [-o text|markdown|json]",
			Short: "Compare the verified results of two revisions (or two folders), run by run and metric by metric",
			Long: `Compare the results of BASE and HEAD: revisions of the Git repository
--repo (default: the one the current folder is in), or two folders (each a
working folder with expsync.yaml, or a results folder itself).

Only run folders that verify with a trusted --key count; anything else in
results/ is listed apart as unverified. Each revision's experiment files
are planned: its runs are the runs it plans (results of older code that its
results folder still holds are left out as stale, planned runs without a
result are pending). Runs are matched by run ID, then by sweep point (same
parameters, new code or data: a changed result). Every metric is shown on
both sides with its absolute and relative change; a run that succeeded on
BASE and fails on HEAD is listed first.

A pull request is compared with the merge base of its target branch:
  expsync diff --merge-base main pr-8        (or: expsync diff main...pr-8)
The base's runs are the runs the merge base's experiment files plan; their
results are read from BASE (main above, or --base-results): expsync commits
results after the code that ran, so they may have landed after the merge
base, and a run's signed folder is the same wherever it was committed.
Its results live on its results branch (docs/results-branches.md):
  expsync diff main...pr-8-head --head-results pr-8-results

Output: text (default), markdown (tables a forge renders) or json.
Exit codes: 0 compared, 1 a side could not be read, 2 usage.`,
			Args: cobra.RangeArgs(1, 2),
			RunE: func(c *cobra.Command, args []string) error {
				o.Base = args[0]
				if len(args) == 2 {
					o.Head = args[1]
				}
				return o.Exec(c.Context(), c.OutOrStdout())
			},
		}
		f := cmd.Flags()
		f.StringVar(&o.Repo, "repo", "", "Git repository the revisions are read from (default: the current folder's)")
		f.StringArrayVar(&o.Keys, "key", nil, "trusted public key file or KMS URI (repeatable)")
		f.BoolVar(&o.MergeBase, "merge-base", false, "compare HEAD with the merge base of BASE and HEAD (as a pull request does)")
		f.StringVar(&o.BaseResults, "base-results", "", "revision holding BASE's results (default: BASE itself; with --merge-base, BASE rather than the merge base)")
		f.StringVar(&o.HeadResults, "head-results", "", "revision holding HEAD's results (a pull request's results branch)")
		f.StringVarP(&o.Output, "output", "o", "text", "output format: text, markdown or json")
		f.StringVar(&o.Mode, "mode", string(v1alpha1.ModeLocal), "mode the runs were planned in: local or kubernetes")
		return cmd
	})
}

// Exec compares and writes the report.
func (o *diffOptions) Exec(ctx context.Context, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Head == "" {
		if b, h, ok := strings.Cut(o.Base, "..."); ok && b != "" && h != "" {
			o.Base, o.Head, o.MergeBase = b, h, true
		}
	}
	opts, err := o.check(ctx)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	base, head, err := o.sides()
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	rep, err := diff.Compute(base, head, opts)
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	switch o.Output {
	case "json":
		return diff.JSON(out, rep)
	case "markdown":
		_, err := out.Write(diff.Markdown(rep, diff.MarkdownOptions{}))
		return err
	default:
		return diff.Text(out, rep)
	}
}

// check validates the flags and loads the keys.
func (o *diffOptions) check(ctx context.Context) (diff.Options, error) {
	var opts diff.Options
	switch {
	case o.Head == "":
		return opts, errors.New("give BASE and HEAD (two revisions or two folders), or BASE...HEAD")
	case len(o.Keys) == 0:
		return opts, errors.New("give the trusted public key with --key: only results it signed are compared")
	case o.Output != "text" && o.Output != "markdown" && o.Output != "json":
		return opts, fmt.Errorf("-o %q: use text, markdown or json", o.Output)
	}
	mode := v1alpha1.Mode(o.Mode)
	if mode != v1alpha1.ModeLocal && mode != v1alpha1.ModeKubernetes {
		return opts, fmt.Errorf("--mode %q: use local or kubernetes", o.Mode)
	}
	opts.Plan = render.PlanOptions{Mode: mode}
	for _, ref := range o.Keys {
		k, err := attest.LoadVerifierKey(ctx, ref)
		if err != nil {
			return opts, err
		}
		opts.Keys = append(opts.Keys, k)
	}
	return opts, nil
}

// sides reads BASE and HEAD: two folders when both are folders (and no
// --repo is given), revisions otherwise.
func (o *diffOptions) sides() (diff.Side, diff.Side, error) {
	if o.Repo == "" && isDir(o.Base) && isDir(o.Head) {
		if o.MergeBase || o.BaseResults != "" || o.HeadResults != "" {
			return diff.Side{}, diff.Side{}, errors.New("--merge-base, --base-results and --head-results need revisions, not folders")
		}
		b, err := folderSide(o.Base)
		if err != nil {
			return b, diff.Side{}, err
		}
		h, err := folderSide(o.Head)
		return b, h, err
	}
	repoDir := o.Repo
	if repoDir == "" {
		repoDir = "."
	}
	repo, err := diff.OpenRepository(repoDir)
	if err != nil {
		return diff.Side{}, diff.Side{}, err
	}
	baseCommit, err := repo.Commit(o.Base)
	if err != nil {
		return diff.Side{}, diff.Side{}, err
	}
	headCommit, err := repo.Commit(o.Head)
	if err != nil {
		return diff.Side{}, diff.Side{}, err
	}
	baseLabel, baseResults := o.Base, o.BaseResults
	if o.MergeBase {
		if baseCommit, err = repo.MergeBase(baseCommit, headCommit); err != nil {
			return diff.Side{}, diff.Side{}, err
		}
		baseLabel = "merge base of " + o.Base + " and " + o.Head
		if baseResults == "" {
			// The merge base's runs, with their results as BASE holds
			// them: expsync commits results after the code that ran, so
			// the merge base itself may hold none of them yet.
			baseResults = o.Base
		}
	}
	base, err := revisionSide(repo, baseLabel, baseCommit, baseResults)
	if err != nil {
		return base, diff.Side{}, err
	}
	base.ResultsLater = o.MergeBase
	head, err := revisionSide(repo, o.Head, headCommit, o.HeadResults)
	return base, head, err
}

func revisionSide(repo *diff.Repository, label, commit, resultsRev string) (diff.Side, error) {
	code, err := repo.Tree(commit)
	if err != nil {
		return diff.Side{}, err
	}
	s := diff.Side{Label: label, Commit: commit, Code: code}
	if resultsRev != "" {
		rc, err := repo.Commit(resultsRev)
		if err != nil {
			return s, err
		}
		if s.Results, err = repo.Tree(rc); err != nil {
			return s, err
		}
		s.Label += " (results: " + resultsRev + ")"
	}
	return s, nil
}

// folderSide reads a working folder (its expsync.yaml or experiments/
// planned) or a bare results folder.
func folderSide(dir string) (diff.Side, error) {
	r, err := tree.NewDir(dir)
	if err != nil {
		return diff.Side{}, err
	}
	s := diff.Side{Label: dir}
	if fileExists(filepath.Join(dir, "expsync.yaml")) || isDir(filepath.Join(dir, "experiments")) {
		s.Code = r
		return s, nil
	}
	s.Results, s.ResultsRoot = r, "."
	return s, nil
}

func isDir(p string) bool {
	info, err := os.Stat(p)
	return err == nil && info.IsDir()
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
