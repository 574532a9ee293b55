package diff

import (
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"sort"
	"strings"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// Side is one side of a comparison.
type Side struct {
	// Label names the side for a reader; Commit is its commit, if any.
	Label, Commit string
	// Code is the tree whose experiment files are planned; nil compares
	// every verified result (two bare results folders).
	Code tree.Reader
	// Results is the tree holding the results folder (nil: Code). A pull
	// request's results live on its results branch, its code on its head.
	Results tree.Reader
	// ResultsRoot is the results folder in Results: "" reads it from the
	// plan (expsync.yaml), else "results"; "." when Results is the
	// results folder itself.
	ResultsRoot string
	// ResultsLater: Results is a later revision of Code's branch (a pull
	// request's target branch as it is now, read for its merge base). Its
	// results of runs Code does not plan are not this side's: they are
	// left out without counting as stale (they may be newer code's).
	ResultsLater bool
}

// Options tune Compute.
type Options struct {
	// Keys are the trusted public keys: a folder counts only when one of
	// them signed it.
	Keys attest.Verifiers
	// Plan plans each side's experiment files (the mode matters: local
	// runs and cluster runs have different IDs).
	Plan render.PlanOptions
	// MaxFileBytes bounds each run.json and metrics.json read (0: the
	// readers' limit, contract.ReadRecordBytes, above what expsync writes).
	MaxFileBytes int64
}

// side is one side, loaded.
type side struct {
	info       SideInfo
	runs       map[string][]Run // experiment -> its current runs
	stale      map[string]int
	unverified []results.Unverified
	// pages: experiment -> its README and plots in the results folder.
	pages map[string][]string
}

// load plans a side (when it has code) and reads its verified results.
func load(s Side, opts Options) (*side, error) {
	out := &side{info: SideInfo{Label: s.Label, Commit: s.Commit}, runs: map[string][]Run{}, stale: map[string]int{}, pages: map[string][]string{}}
	if s.Results == nil {
		s.Results = s.Code
	}
	if s.Results == nil {
		return nil, fmt.Errorf("%s: nothing to read", s.Label)
	}
	var plan *render.PlanResult
	if s.Code != nil {
		p, err := render.Plan(s.Code, opts.Plan)
		if err != nil {
			out.info.PlanError = firstLine(err.Error())
		} else {
			plan, out.info.Planned = p, true
		}
	}
	root := s.ResultsRoot
	if root == "" && plan != nil {
		root = plan.Config.Results
	}
	if root == "" {
		root = results.DefaultRoot
	}
	layout := results.Layout{Root: root}
	out.info.ResultsRoot = layout.ExperimentDir("")
	verified, err := readVerified(s.Results, layout, opts, out)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", s.Label, err)
	}
	if plan != nil {
		out.fromPlan(plan, verified, layout)
		if s.ResultsLater {
			clear(out.stale)
		}
	} else {
		out.latestPerPoint(verified, layout)
	}
	return out, nil
}

// readVerified reads every experiment folder's runs, keeping the verified
// ones by run ID and listing the others.
func readVerified(r tree.Reader, layout results.Layout, opts Options, out *side) (map[string]map[string]results.Run, error) {
	verified := map[string]map[string]results.Run{}
	rootDir := layout.ExperimentDir("")
	entries, err := r.ReadDir(rootDir)
	if errors.Is(err, tree.ErrNotExist) {
		return verified, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", rootDir, err)
	}
	mo := results.MergeOptions{MaxFileBytes: opts.MaxFileBytes, Verify: verifier(opts.Keys),
		// Called for each run folder that verified: its reproduction
		// statements that do not verify are listed apart, naming each (a
		// pull request forging one fails), the run still counts.
		Reproductions: func(r tree.Reader, runDir string) []results.Reproduction {
			files, err := attest.VerifyTreeReproductions(r, runDir, attest.FolderOptions{Keys: opts.Keys})
			if err != nil {
				out.unverified = append(out.unverified, results.Unverified{Dir: path.Join(runDir, attest.ReproductionsDir), Reason: err.Error()})
				return nil
			}
			for _, f := range files {
				if !f.OK {
					out.unverified = append(out.unverified, results.Unverified{Dir: path.Join(runDir, f.Name), Reason: f.Reason})
				}
			}
			return nil
		}}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sum, err := layout.ReadSummary(r, e.Name, mo)
		if err != nil {
			return nil, err
		}
		out.unverified = append(out.unverified, sum.Unverified...)
		if files, err := r.ReadDir(layout.ExperimentDir(e.Name)); err == nil {
			for _, f := range files {
				if !f.IsDir() && (f.Name == results.ReadmeFile || results.IsPlotFile(f.Name)) {
					out.pages[e.Name] = append(out.pages[e.Name], path.Join(layout.ExperimentDir(e.Name), f.Name))
				}
			}
		}
		for _, run := range sum.Runs {
			if verified[e.Name] == nil {
				verified[e.Name] = map[string]results.Run{}
			}
			verified[e.Name][run.Record.RunID] = run
		}
	}
	return verified, nil
}

// verifier is the READMEs' check: signed by a trusted key, attesting the
// folder's run ID and experiment, covering every file. A run counts by its
// own attestation: the statements in its reproductions/ are checked apart
// (readVerified), so a junk one never makes a verified run look removed.
func verifier(keys attest.Verifiers) func(tree.Reader, string, string) error {
	return func(r tree.Reader, dir, experiment string) error {
		rep, err := attest.VerifyTreeFolder(r, dir, attest.FolderOptions{Keys: keys, RunID: path.Base(dir), Experiment: experiment, SkipReproductions: true})
		if err == nil {
			return nil
		}
		if rep != nil && len(rep.Failures()) > 0 {
			c := rep.Failures()[0]
			return fmt.Errorf("%s: %s", c.Name, c.Detail)
		}
		return err
	}
}

// fromPlan: the side's runs are those it plans, with their verified
// result when there is one (pending otherwise); other verified results
// are stale.
func (s *side) fromPlan(plan *render.PlanResult, verified map[string]map[string]results.Run, layout results.Layout) {
	planned := map[string]bool{}
	for _, pr := range plan.Runs {
		planned[pr.ID] = true
		run := Run{ID: pr.ID, Params: pr.Params, Repeat: pr.Repeat}
		if res, ok := verified[pr.Experiment][pr.ID]; ok {
			run = fromResult(res, layout)
		}
		s.runs[pr.Experiment] = append(s.runs[pr.Experiment], run)
	}
	for exp, runs := range verified {
		for id := range runs {
			if !planned[id] {
				s.stale[exp]++
			}
		}
	}
}

// latestPerPoint: without a plan every verified run counts, and of several
// runs of one point (older and newer code) the one that finished last.
func (s *side) latestPerPoint(verified map[string]map[string]results.Run, layout results.Layout) {
	for exp, runs := range verified {
		best := map[string]results.Run{}
		for _, r := range runs {
			k := pointKey(r.Record.Params, r.Record.Identity.Repeat)
			cur, ok := best[k]
			if !ok || newer(r, cur) {
				if ok {
					s.stale[exp]++
				}
				best[k] = r
			} else {
				s.stale[exp]++
			}
		}
		for _, r := range best {
			s.runs[exp] = append(s.runs[exp], fromResult(r, layout))
		}
	}
}

func newer(a, b results.Run) bool {
	if !a.Record.FinishedAt.Equal(b.Record.FinishedAt) {
		return a.Record.FinishedAt.After(b.Record.FinishedAt)
	}
	return a.Record.RunID > b.Record.RunID // any fixed order
}

func fromResult(r results.Run, layout results.Layout) Run {
	rec := r.Record
	return Run{ID: rec.RunID, Params: rec.Params, Repeat: rec.Identity.Repeat, Status: string(rec.Status),
		Reason: rec.Reason, ExitCode: rec.ExitCode, Metrics: r.Metrics, MetricText: r.MetricText,
		Dir: layout.RunDir(rec.Experiment, rec.RunID)}
}

// pointKey names a sweep point (and repeat) across sides: its parameters
// as canonical JSON (sorted keys; numbers as encoding/json writes them,
// which is how run.json recorded them).
func pointKey(params map[string]any, repeat int) string {
	b, err := json.Marshal(params)
	if err != nil {
		b = []byte(fmt.Sprint(params))
	}
	return fmt.Sprintf("%s#%d", b, repeat)
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return s[:i] + " …"
	}
	return s
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
