package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/attest/reach"
	"github.com/expsync/expsync/contract"
)

// verifyOptions is `expsync verify`: check the attestations of results.
type verifyOptions struct {
	Paths         []string
	Keys          []string
	KeyBuilders   []string
	Threshold     int
	Repo          string
	Rev           string
	Store         string
	BuilderIDs    []string
	RequireAll    bool
	RequireCommit bool
	Output        string
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &verifyOptions{}
		cmd := &cobra.Command{
			Use:   "verify PATH... --key PUB [--repo DIR [--rev REV]] [--store DIR] [--builder-id ID] [--require-all] [--require-commit] [-o text|json]",
			Short: "Verify the signed provenance of results folders",
			Long: `Verify the attestations of runs. PATH is a results folder
(results/<experiment>/<run-id>/), a folder holding many (every run folder
below it is checked: one without provenance.intoto.jsonl fails), or an
envelope file. A PATH that does not exist is a usage error.

For each: the DSSE signatures are checked against the trusted --key files
before anything in the payload is read (--threshold distinct keys must have
signed), then the payload and predicate types, the builder ID (--builder-id
for all keys, --key-builder-id KEY=ID to bind a key to the builders it may
vouch for), that the invocation ID is the folder's run ID, that a folder in
results/<experiment>/ attests that experiment, that every subject
matches its file in the folder or in --store (absent files are "not
checked", failures with --require-all), that no file in the folder is
unattested, and that the
identity in run.json hashes to the run ID. With --repo, the context tree and
the experiment file and template blobs must be reachable from --rev (default
HEAD), which survives squash merges, and the identity's context tree (the
context without its spec files) is recomputed from the attested one; the
commit must exist only with --require-commit.

Exit codes: 0 every attestation verified, 1 any failed (each named with its
reason), 2 usage.`,
			Args: cobra.ArbitraryArgs,
			RunE: func(c *cobra.Command, args []string) error {
				o.Paths = args
				return o.Exec(c.Context(), c.OutOrStdout())
			},
		}
		f := cmd.Flags()
		f.StringArrayVar(&o.Keys, "key", nil, "trusted public key file or KMS URI (repeatable)")
		f.StringArrayVar(&o.KeyBuilders, "key-builder-id", nil, "KEY=BUILDER_ID: the key given as --key KEY may vouch only for these builder IDs (repeatable)")
		f.IntVar(&o.Threshold, "threshold", 1, "how many distinct trusted keys must have signed")
		f.StringVar(&o.Repo, "repo", "", "local Git repository to check tree and blob reachability in")
		f.StringVar(&o.Rev, "rev", "", "with --repo: the revision the objects must be reachable from (default HEAD)")
		f.StringVar(&o.Store, "store", "", "content-addressed store folder holding outputs not committed")
		f.StringArrayVar(&o.BuilderIDs, "builder-id", nil, "accepted builder ID (repeatable; default: any)")
		f.BoolVar(&o.RequireAll, "require-all", false, "fail subjects absent from the folder and the store")
		f.BoolVar(&o.RequireCommit, "require-commit", false, "with --repo: fail when the attested commit is not in the repository")
		f.StringVarP(&o.Output, "output", "o", "text", "output format: text or json")
		return cmd
	})
}

// verifyResult is one PATH's outcome, as JSON prints it.
type verifyResult struct {
	OK bool `json:"ok"`
	*attest.Report
}

// Exec verifies every PATH and writes the reports to out.
func (o *verifyOptions) Exec(ctx context.Context, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	opts, index, err := o.policy(ctx)
	if err == nil {
		err = checkPaths(o.Paths)
	}
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	targets, missing := findAttestations(o.Paths)
	reports := o.verifyAll(targets, opts, index)
	for _, m := range missing {
		r := &attest.Report{Path: m.path}
		r.Add("envelope", attest.StatusFailed, m.reason)
		reports = append(reports, r)
	}
	sort.SliceStable(reports, func(i, j int) bool { return reports[i].Path < reports[j].Path })

	if err := o.print(out, reports); err != nil {
		return err
	}
	failed := 0
	for _, r := range reports {
		if !r.OK() {
			failed++
		}
	}
	if failed > 0 {
		return &exitError{code: 1, err: fmt.Errorf("%d of %d attestations failed verification", failed, len(reports))}
	}
	return nil
}

// policy checks the flags and loads the keys and the repository.
func (o *verifyOptions) policy(ctx context.Context) (attest.FolderOptions, *reach.Index, error) {
	var opts attest.FolderOptions
	switch {
	case len(o.Paths) == 0:
		return opts, nil, errors.New("give at least one PATH (a results folder, a folder of them, or an envelope)")
	case len(o.Keys) == 0:
		return opts, nil, errors.New("give at least one trusted public key with --key")
	case o.Output != "text" && o.Output != "json":
		return opts, nil, fmt.Errorf("-o %q: use text or json", o.Output)
	case o.Repo == "" && (o.Rev != "" || o.RequireCommit):
		return opts, nil, errors.New("--rev and --require-commit need --repo")
	}
	bindings, err := o.keyBuilderIDs()
	if err != nil {
		return opts, nil, err
	}
	for _, ref := range o.Keys {
		k, err := attest.LoadVerifierKey(ctx, ref)
		if err != nil {
			return opts, nil, err
		}
		k.BuilderIDs = bindings[ref]
		delete(bindings, ref)
		opts.Keys = append(opts.Keys, k)
	}
	for ref := range bindings {
		return opts, nil, fmt.Errorf("--key-builder-id names %s, which is not given with --key", ref)
	}
	distinct := map[string]bool{}
	for _, k := range opts.Keys {
		distinct[k.ID] = true
	}
	if o.Threshold < 1 || o.Threshold > len(distinct) {
		return opts, nil, fmt.Errorf("--threshold %d: must be between 1 and the %d distinct keys given", o.Threshold, len(distinct))
	}
	opts.Threshold = o.Threshold
	opts.BuilderIDs = o.BuilderIDs
	opts.RequireAll = o.RequireAll
	if o.Store != "" {
		if info, err := os.Stat(o.Store); err != nil || !info.IsDir() {
			return opts, nil, fmt.Errorf("--store %s: not a folder", o.Store)
		}
		opts.Store = attest.StoreDir(o.Store)
	}
	var index *reach.Index
	if o.Repo != "" {
		var err error
		if index, err = reach.Open(o.Repo, o.Rev); err != nil {
			return opts, nil, err
		}
		opts.ContextTreeWithout = index.TreeWithout
	}
	return opts, index, nil
}

// keyBuilderIDs parses --key-builder-id KEY=ID flags into IDs per key.
func (o *verifyOptions) keyBuilderIDs() (map[string][]string, error) {
	out := map[string][]string{}
	for _, kv := range o.KeyBuilders {
		key, id, ok := strings.Cut(kv, "=")
		if !ok || key == "" || id == "" {
			return nil, fmt.Errorf("--key-builder-id %q: want KEY=BUILDER_ID", kv)
		}
		out[key] = append(out[key], id)
	}
	return out, nil
}

type target struct {
	path   string
	folder bool
	// experiment is the experiment folder a run folder lies in
	// (results/<experiment>/<run-id>/), which it must attest; "" elsewhere.
	experiment string
}

type missingTarget struct{ path, reason string }

// checkPaths refuses PATHs that do not exist: a typo is a usage error, not
// a failed attestation.
func checkPaths(paths []string) error {
	for _, p := range paths {
		_, err := os.Stat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			return fmt.Errorf("PATH %s does not exist: give a results folder, a folder of them, or an envelope file", p)
		case err != nil:
			return fmt.Errorf("PATH %s: %w", p, err)
		}
	}
	return nil
}

// findAttestations expands PATHs: an envelope file, a results folder, or a
// folder searched for results folders. Every run folder found — a folder
// named by a run ID under results/<experiment>/, or one holding run.json —
// is a target; one without an envelope fails, since anyone can push files
// that look like results.
func findAttestations(paths []string) ([]target, []missingTarget) {
	var targets []target
	var missing []missingTarget
	for _, p := range paths {
		info, err := os.Stat(p)
		if err != nil {
			missing = append(missing, missingTarget{p, err.Error()})
			continue
		}
		if !info.IsDir() {
			targets = append(targets, target{path: p})
			continue
		}
		found := 0
		err = filepath.WalkDir(p, func(q string, d fs.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case d.IsDir() && d.Name() == ".git":
				return filepath.SkipDir
			case d.Type()&fs.ModeSymlink != 0 && contract.IsRunID(d.Name()):
				found++
				missing = append(missing, missingTarget{q, "a symlink where a run folder belongs: results folders hold files only, never links"})
			case d.IsDir() && isRunFolder(q):
				found++
				if _, err := os.Lstat(filepath.Join(q, attest.EnvelopeFile)); err != nil {
					missing = append(missing, missingTarget{q, "run folder without " + attest.EnvelopeFile + ": unsigned, not a result expsync attested"})
				} else {
					targets = append(targets, target{path: q, folder: true, experiment: experimentOf(q)})
				}
				return filepath.SkipDir // its files are checked as the folder's
			case !d.IsDir() && d.Name() == attest.EnvelopeFile:
				targets = append(targets, target{path: filepath.Dir(q), folder: true, experiment: experimentOf(filepath.Dir(q))})
				found++
			}
			return nil
		})
		switch {
		case err != nil:
			missing = append(missing, missingTarget{p, err.Error()})
		case found == 0:
			missing = append(missing, missingTarget{p, "no " + attest.EnvelopeFile + " found in this folder or below"})
		}
	}
	return targets, missing
}

// isRunFolder tells a run folder: named by a run ID (64 hex digits) and
// either inside results/<experiment>/ or holding a run.json.
func isRunFolder(dir string) bool {
	if !contract.IsRunID(filepath.Base(dir)) {
		return false
	}
	if experimentOf(dir) != "" {
		return true
	}
	_, err := os.Lstat(filepath.Join(dir, attest.RunFile))
	return err == nil
}

// experimentOf is the experiment a run folder lies in when the layout says
// so (results/<experiment>/<run-id>); "" otherwise.
func experimentOf(dir string) string {
	abs, err := filepath.Abs(dir)
	if err != nil || !contract.IsRunID(filepath.Base(abs)) {
		return ""
	}
	expDir := filepath.Dir(abs)
	if filepath.Base(filepath.Dir(expDir)) != "results" {
		return ""
	}
	return filepath.Base(expDir)
}

// verifyAll verifies targets in parallel; the repository index is shared
// (and serialised inside), so each tree is walked once.
func (o *verifyOptions) verifyAll(targets []target, opts attest.FolderOptions, index *reach.Index) []*attest.Report {
	reports := make([]*attest.Report, len(targets))
	work := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < runtime.GOMAXPROCS(0); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range work {
				reports[i] = o.verifyOne(targets[i], opts, index)
			}
		}()
	}
	for i := range targets {
		work <- i
	}
	close(work)
	wg.Wait()
	return reports
}

func (o *verifyOptions) verifyOne(t target, opts attest.FolderOptions, index *reach.Index) *attest.Report {
	var r *attest.Report
	if t.folder {
		opts.Experiment = t.experiment
		r, _ = attest.VerifyFolder(t.path, opts)
	} else {
		r, _ = attest.VerifyEnvelopeFile(t.path, opts)
	}
	if index != nil && r.Verified != nil {
		reach.CheckReport(r, r.Verified, index, o.RequireCommit)
	}
	return r
}

func (o *verifyOptions) print(out io.Writer, reports []*attest.Report) error {
	if o.Output == "json" {
		results := make([]verifyResult, len(reports))
		for i, r := range reports {
			results[i] = verifyResult{OK: r.OK(), Report: r}
		}
		enc := json.NewEncoder(out)
		enc.SetIndent("", "  ")
		return enc.Encode(map[string]any{"results": results})
	}
	return printVerifyTable(out, reports)
}

// printVerifyTable prints one row per attestation and, under each failure,
// the checks that failed; not-checked subjects are counted.
func printVerifyTable(out io.Writer, reports []*attest.Report) error {
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "RESULT\tRUN\tCHECKS\tPATH")
	verified := 0
	for _, r := range reports {
		passed, notChecked := 0, 0
		for _, c := range r.Checks {
			switch c.Status {
			case attest.StatusOK:
				passed++
			case attest.StatusNotChecked:
				notChecked++
			}
		}
		result := "verified"
		if !r.OK() {
			result = "FAILED"
		} else {
			verified++
		}
		counts := fmt.Sprintf("%d ok", passed)
		if notChecked > 0 {
			counts += fmt.Sprintf(", %d not checked", notChecked)
		}
		if f := len(r.Failures()); f > 0 {
			counts += fmt.Sprintf(", %d failed", f)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", result, cmp.Or(contract.ShortID(r.RunID), "-"), counts, r.Path)
		for _, c := range r.Checks {
			if c.Status != attest.StatusOK {
				fmt.Fprintf(tw, "\t\t  %s %s:\t%s\n", c.Status, c.Name, verifyDetailLine(c.Detail))
			}
		}
	}
	fmt.Fprintf(tw, "\n%d verified, %d failed\n", verified, len(reports)-verified)
	return tw.Flush()
}

func verifyDetailLine(s string) string { return strings.Join(strings.Fields(s), " ") }
