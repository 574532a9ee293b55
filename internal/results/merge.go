package results

import (
	"bytes"
	"errors"
	"fmt"
	"maps"
	"path"
	"sort"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/tree"
)

// MergeOptions tune Merge.
type MergeOptions struct {
	// Replace reports whether a run folder already in the head gives way to
	// ours: it is not genuine (a forged or copied envelope pushed by hand) or
	// it is a failure that ours retried. Otherwise the first writer wins.
	// Nil never replaces.
	Replace func(head tree.Reader, dir string) bool
	// Plots are the plots chosen per experiment (its spec.plots); an
	// experiment without an entry gets the default plot.
	Plots map[string][]PlotChoice
	// MaxFileBytes bounds each run.json/metrics.json read back (0: the
	// readers' limit, contract.ReadRecordBytes: above what expsync writes).
	MaxFileBytes int64
	// Known returns run folders the caller already verified (or wrote) with
	// their content, so regenerating a summary does not read and verify
	// every folder of a large sweep at every commit.
	Known func(dir string) (Run, bool)
	// Verify checks that the run folder dir of experiment is genuine: signed
	// by a trusted key, attesting that experiment and the folder's run ID.
	// Summaries (README tables, plots, index counts) list only known or
	// verified folders; the others are listed apart as unverified. Nil
	// verifies nothing: every folder not known is unverified.
	Verify func(r tree.Reader, dir, experiment string) error
	// Reproductions lists the reproduction statements of the run folder
	// runDir, each verified (attest.VerifyTreeReproductions), for the
	// README. Nil lists none.
	Reproductions func(r tree.Reader, runDir string) []Reproduction
	// OwnBatch says the batch's folders are the caller's own, signed by it
	// and never read from a remote: those Merge adds or replaces are
	// summarised from the batch without verifying them again. Folders the
	// head keeps (or has identical) still need Known or Verify.
	OwnBatch bool
}

// Unverified is a folder in an experiment's results folder that the
// summaries do not count: unsigned, signed by an untrusted key, copied
// from another run or experiment, or edited after signing.
type Unverified struct {
	Dir    string
	Reason string
}

// Summary is what the summaries are built from: one experiment's genuine
// runs and the folders beside them that are not.
type Summary struct {
	Runs       []Run
	Unverified []Unverified
}

// MergeReport says what Merge did with each run folder of the batch.
type MergeReport struct {
	// Added run folders (repository paths) that the head did not have.
	Added []string
	// Identical folders the head already had with the same run.json.
	Identical []string
	// Kept folders where the head had a genuine, different result: the
	// first writer wins and ours was dropped.
	Kept []string
	// Replaced folders where the head's folder gave way (see Replace).
	Replaced []string
	// Experiments whose README was regenerated.
	Experiments []string
}

// Changes is a set of file changes for one commit: a nil value deletes the
// file at that path.
type Changes map[string][]byte

// Merge rebuilds a batch of run folders on top of a branch head: it adds the
// folders the head lacks, keeps the head's own genuine folders, replaces
// forged ones, and regenerates the README and plot of every experiment it
// touched — plus the index — from the merged set of run folders, so nothing
// another writer committed meanwhile is lost from the summaries.
//
// batch holds the files of run folders keyed by repository path (anything
// else in it is ignored: summaries are always regenerated).
func (l Layout) Merge(head tree.Reader, batch map[string][]byte, opts MergeOptions) (Changes, MergeReport, error) {
	var report MergeReport
	folders, err := l.groupByFolder(batch)
	if err != nil {
		return nil, report, err
	}
	changes := Changes{}
	affected := map[string]bool{}
	dirs := make([]string, 0, len(folders))
	for d := range folders {
		dirs = append(dirs, d)
	}
	sort.Strings(dirs)
	// One listing per experiment tells which of our folders the head has;
	// only those are read (a path lookup decodes every tree on the way).
	inHead := map[string]map[string]bool{}
	for _, dir := range dirs {
		expDir := path.Dir(dir)
		if inHead[expDir] != nil {
			continue
		}
		inHead[expDir] = map[string]bool{}
		entries, err := head.ReadDir(expDir)
		if err != nil && !errors.Is(err, tree.ErrNotExist) {
			return nil, report, fmt.Errorf("merge results: list %s: %w", expDir, err)
		}
		for _, e := range entries {
			if e.IsDir() {
				inHead[expDir][e.Name] = true
			}
		}
	}
	for _, dir := range dirs {
		files := folders[dir]
		exp := path.Base(path.Dir(dir))
		if inHead[path.Dir(dir)][path.Base(dir)] {
			same, err := holdsExactly(head, dir, files)
			if err != nil {
				return nil, report, err
			}
			if same {
				report.Identical = append(report.Identical, dir)
				continue
			}
			if opts.Replace == nil || !opts.Replace(head, dir) {
				report.Kept = append(report.Kept, dir)
				continue
			}
			// Remove what the forged folder holds beyond our files.
			stale, err := listFiles(head, dir)
			if err != nil {
				return nil, report, err
			}
			for _, p := range stale {
				if _, ours := files[p]; !ours {
					changes[p] = nil
				}
			}
			report.Replaced = append(report.Replaced, dir)
		} else {
			report.Added = append(report.Added, dir)
		}
		for p, data := range files {
			changes[p] = data
		}
		affected[exp] = true
	}
	if len(affected) == 0 {
		return changes, report, nil
	}

	if opts.OwnBatch {
		opts.Known = ownFolders(folders, report, opts.Known)
	}
	// Summaries are read from the run folders only: the pages written below
	// stay out of the overlay, which indexes its changes once.
	merged := newOverlay(head, changes)
	pages := Changes{}
	report.Experiments = sortedKeys(affected)
	if err := l.summaries(head, merged, report.Experiments, opts, pages); err != nil {
		return nil, report, err
	}
	maps.Copy(changes, pages)
	return changes, report, nil
}

// summaries regenerates the README and plots of each experiment, and the
// index, from the run folders of merged into pages; plots of head that the
// new READMEs no longer link are deleted.
func (l Layout) summaries(head, merged tree.Reader, experiments []string, opts MergeOptions, pages Changes) error {
	for _, exp := range experiments {
		sum, err := l.readSummary(merged, exp, opts)
		if err != nil {
			return err
		}
		page := RenderExperiment(exp, sum.Runs, opts.Plots[exp], sum.Unverified...)
		dir := l.ExperimentDir(exp)
		pages[path.Join(dir, ReadmeFile)] = page.Readme
		if err := stalePlots(head, dir, page.Plots, pages); err != nil {
			return err
		}
		for _, p := range page.Plots {
			pages[path.Join(dir, p.File)] = p.SVG
		}
	}
	index, err := l.RenderIndexFrom(merged, opts)
	if err != nil {
		return err
	}
	pages[path.Join(l.root(), ReadmeFile)] = index
	return nil
}

// Redraw regenerates the summaries of experiments (those with a results
// folder in head) without adding any run folder: for a spec whose plots
// changed while none of its runs did.
func (l Layout) Redraw(head tree.Reader, experiments []string, opts MergeOptions) (Changes, error) {
	var present []string
	for _, exp := range experiments {
		if _, err := head.Stat(l.ExperimentDir(exp)); err == nil {
			present = append(present, exp)
		} else if !errors.Is(err, tree.ErrNotExist) {
			return nil, fmt.Errorf("redraw results of %s: %w", exp, err)
		}
	}
	pages := Changes{}
	if len(present) == 0 {
		return pages, nil
	}
	if err := l.summaries(head, head, present, opts, pages); err != nil {
		return nil, err
	}
	return pages, nil
}

// stalePlots deletes the plots of dir in the head that the new page no
// longer draws (a plot removed from spec.plots, or with nothing to draw).
func stalePlots(head tree.Reader, dir string, keep []PlotImage, pages Changes) error {
	entries, err := head.ReadDir(dir)
	if errors.Is(err, tree.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("merge results: list %s: %w", dir, err)
	}
	kept := map[string]bool{}
	for _, p := range keep {
		kept[p.File] = true
	}
	for _, e := range entries {
		if !e.IsDir() && IsPlotFile(e.Name) && !kept[e.Name] {
			pages[path.Join(dir, e.Name)] = nil
		}
	}
	return nil
}

// ownFolders extends known with the caller's own folders that Merge added
// or replaced: their content in the merged tree is the batch's, as the
// caller signed it. A folder whose run.json does not parse is left to
// known and verification.
func ownFolders(folders map[string]map[string][]byte, report MergeReport, known func(string) (Run, bool)) func(string) (Run, bool) {
	own := map[string]Run{}
	for _, group := range [][]string{report.Added, report.Replaced} {
		for _, dir := range group {
			files := folders[dir]
			rec, err := ParseRecord(files[path.Join(dir, RunFile)])
			if err != nil {
				continue
			}
			run := Run{Record: rec}
			if m, ok := files[path.Join(dir, MetricsFile)]; ok {
				run.Metrics, run.MetricText, _ = ParseMetrics(m)
			}
			own[dir] = run
		}
	}
	return func(dir string) (Run, bool) {
		if run, ok := own[dir]; ok {
			return run, true
		}
		if known != nil {
			return known(dir)
		}
		return Run{}, false
	}
}

// ReadRuns reads every run folder of one experiment from a snapshot,
// without verifying any (see MergeOptions.Verify). Folders whose run.json
// is missing or unreadable are skipped.
func (l Layout) ReadRuns(r tree.Reader, experiment string, limit int64) ([]Run, error) {
	sum, err := l.readSummary(r, experiment, MergeOptions{MaxFileBytes: limit,
		Verify: func(tree.Reader, string, string) error { return nil }})
	return sum.Runs, err
}

// ReadSummary reads the run folders of one experiment, keeping those that
// are known or verify (opts.Verify) and listing the others as unverified:
// what the READMEs count, for other readers (expsync diff).
func (l Layout) ReadSummary(r tree.Reader, experiment string, opts MergeOptions) (Summary, error) {
	return l.readSummary(r, experiment, opts)
}

// readSummary reads the run folders of one experiment, keeping those that
// are known or verify (opts.Verify) and listing the others as unverified.
func (l Layout) readSummary(r tree.Reader, experiment string, opts MergeOptions) (Summary, error) {
	var sum Summary
	dir := l.ExperimentDir(experiment)
	entries, err := r.ReadDir(dir)
	if errors.Is(err, tree.ErrNotExist) {
		return sum, nil
	}
	if err != nil {
		return sum, fmt.Errorf("read results of %s: %w", experiment, err)
	}
	for _, e := range entries {
		runDir := path.Join(dir, e.Name)
		if !e.IsDir() {
			if contract.IsRunID(e.Name) {
				sum.Unverified = append(sum.Unverified, Unverified{Dir: runDir, Reason: fmt.Sprintf("not a folder (Git mode %o): a run folder holds files only", e.Mode)})
			}
			continue
		}
		run, err := l.knownOrVerified(r, runDir, experiment, opts)
		if err != nil {
			sum.Unverified = append(sum.Unverified, Unverified{Dir: runDir, Reason: err.Error()})
			continue
		}
		if opts.Reproductions != nil {
			run.Reproductions = opts.Reproductions(r, runDir)
		}
		sum.Runs = append(sum.Runs, run)
	}
	return sum, nil
}

// knownOrVerified reads a run folder the caller knows, or one that
// verifies.
func (l Layout) knownOrVerified(r tree.Reader, runDir, experiment string, opts MergeOptions) (Run, error) {
	if opts.Known != nil {
		if run, ok := opts.Known(runDir); ok {
			return run, nil
		}
	}
	if err := l.verify(r, runDir, experiment, opts); err != nil {
		return Run{}, err
	}
	return l.ReadRun(r, runDir, opts.MaxBytes())
}

func (l Layout) verify(r tree.Reader, dir, experiment string, opts MergeOptions) error {
	if opts.Verify == nil {
		return errors.New("not verified")
	}
	return opts.Verify(r, dir, experiment)
}

// ReadRun reads one run folder's run.json and metrics.json.
func (l Layout) ReadRun(r tree.Reader, dir string, limit int64) (Run, error) {
	data, err := r.ReadFile(path.Join(dir, RunFile), limit)
	if err != nil {
		return Run{}, err
	}
	rec, err := ParseRecord(data)
	if err != nil {
		return Run{}, fmt.Errorf("%s: %w", path.Join(dir, RunFile), err)
	}
	run := Run{Record: rec}
	if m, err := r.ReadFile(path.Join(dir, MetricsFile), limit); err == nil {
		run.Metrics, run.MetricText, _ = ParseMetrics(m)
	}
	return run, nil
}

// RenderIndexFrom builds results/README.md from every experiment folder of
// a snapshot, counting the runs that are known or verify (opts).
func (l Layout) RenderIndexFrom(r tree.Reader, opts MergeOptions) ([]byte, error) {
	entries, err := r.ReadDir(l.root())
	if err != nil && !errors.Is(err, tree.ErrNotExist) {
		return nil, fmt.Errorf("read results root: %w", err)
	}
	var index []IndexEntry
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		sum, err := l.readSummary(r, e.Name, opts)
		if err != nil {
			return nil, err
		}
		if len(sum.Runs) == 0 && len(sum.Unverified) == 0 {
			continue
		}
		entry := Summarize(e.Name, sum.Runs)
		entry.Unverified = len(sum.Unverified)
		index = append(index, entry)
	}
	return RenderIndex(index), nil
}

// groupByFolder keys batch files by their run folder and checks each path
// lies in <root>/<experiment>/<run-id>/.
func (l Layout) groupByFolder(batch map[string][]byte) (map[string]map[string][]byte, error) {
	out := map[string]map[string][]byte{}
	prefix := l.root() + "/"
	for p, data := range batch {
		if !strings.HasPrefix(p, prefix) {
			return nil, fmt.Errorf("merge results: %s is outside the results folder %s", p, l.root())
		}
		parts := strings.SplitN(strings.TrimPrefix(p, prefix), "/", 3)
		if len(parts) < 3 {
			continue // a summary file: regenerated below
		}
		if err := checkRelPath(p); err != nil {
			return nil, fmt.Errorf("merge results: %s: %w", p, err)
		}
		dir := prefix + parts[0] + "/" + parts[1]
		if out[dir] == nil {
			out[dir] = map[string][]byte{}
		}
		out[dir][p] = data
	}
	return out, nil
}

// MaxBytes is the limit on each run.json and metrics.json read back.
func (o MergeOptions) MaxBytes() int64 {
	if o.MaxFileBytes > 0 {
		return o.MaxFileBytes
	}
	return contract.ReadRecordBytes
}

// holdsExactly reports whether the head's folder dir holds exactly files
// (repository paths): the same names and the same bytes, compared by Git
// blob ID where the head knows it. A folder with the same run.json and
// envelope but a signed file deleted (or one added) is not the same: ours
// replaces it when Replace says so, restoring what was signed.
func holdsExactly(head tree.Reader, dir string, files map[string][]byte) (bool, error) {
	all, err := listFiles(head, dir)
	if err != nil {
		return false, err
	}
	// Reproduction statements carry their own signatures and are not part
	// of the run's result: a folder holding them is the same result.
	names := all[:0:0]
	for _, p := range all {
		if !inReproductions(strings.TrimPrefix(p, dir+"/")) {
			names = append(names, p)
		}
	}
	if len(names) != len(files) {
		return false, nil
	}
	for _, p := range names {
		data, ours := files[p]
		if !ours {
			return false, nil
		}
		e, err := head.Stat(p)
		if err != nil {
			return false, nil
		}
		if e.Hash != "" {
			if e.Hash != tree.BlobID(data) || e.Mode != tree.ModeFile {
				return false, nil
			}
			continue
		}
		theirs, err := head.ReadFile(p, int64(len(data))+1)
		if err != nil || !bytes.Equal(theirs, data) {
			return false, nil
		}
	}
	return true, nil
}

// listFiles lists every file under dir, recursively.
func listFiles(r tree.Reader, dir string) ([]string, error) {
	entries, err := r.ReadDir(dir)
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", dir, err)
	}
	var out []string
	for _, e := range entries {
		p := path.Join(dir, e.Name)
		if e.IsDir() {
			sub, err := listFiles(r, p)
			if err != nil {
				return nil, err
			}
			out = append(out, sub...)
			continue
		}
		out = append(out, p)
	}
	return out, nil
}

// overlay reads the head with pending changes applied: changed files
// replace the head's, nil changes delete, and new folders appear in
// listings. Object IDs of overlaid entries are not computed (summaries
// never need them). The changes are indexed by folder once (newOverlay), so
// a listing costs its own entries, not every change of a large batch; they
// must not change afterwards.
type overlay struct {
	base    tree.Reader
	changes Changes
	// dirs maps each folder holding a change (at any depth) to its
	// children the changes touch: name → entry, or a zero Entry for a
	// deleted file.
	dirs map[string]map[string]tree.Entry
}

func newOverlay(base tree.Reader, changes Changes) overlay {
	o := overlay{base: base, changes: changes, dirs: map[string]map[string]tree.Entry{}}
	for c, data := range changes {
		name, dir := path.Base(c), path.Dir(c)
		if dir == "." {
			dir = ""
		}
		if e, ok := o.child(dir)[name]; !ok || !e.IsDir() || data != nil {
			o.child(dir)[name] = fileEntry(name, data) // a written folder outlives a deletion
		}
		// Every ancestor of a written file lists the folder on the way.
		for data != nil && dir != "" {
			name, dir = path.Base(dir), path.Dir(dir)
			if dir == "." {
				dir = ""
			}
			o.child(dir)[name] = tree.Entry{Name: name, Mode: tree.ModeDir}
		}
	}
	return o
}

func (o overlay) child(dir string) map[string]tree.Entry {
	m := o.dirs[dir]
	if m == nil {
		m = map[string]tree.Entry{}
		o.dirs[dir] = m
	}
	return m
}

func fileEntry(name string, data []byte) tree.Entry {
	if data == nil {
		return tree.Entry{} // deleted
	}
	return tree.Entry{Name: name, Mode: tree.ModeFile, Size: int64(len(data))}
}

func (o overlay) ReadFile(p string, limit int64) ([]byte, error) {
	if data, ok := o.changes[p]; ok {
		if data == nil {
			return nil, fmt.Errorf("%s: %w", p, tree.ErrNotExist)
		}
		if limit > 0 && int64(len(data)) > limit {
			return nil, fmt.Errorf("%s: %w", p, tree.ErrTooLarge)
		}
		return data, nil
	}
	return o.base.ReadFile(p, limit)
}

func (o overlay) Stat(p string) (tree.Entry, error) {
	if data, ok := o.changes[p]; ok {
		if data == nil {
			return tree.Entry{}, fmt.Errorf("%s: %w", p, tree.ErrNotExist)
		}
		return fileEntry(path.Base(p), data), nil
	}
	if o.hasWrittenFolder(strings.TrimSuffix(p, "/")) {
		return tree.Entry{Name: path.Base(p), Mode: tree.ModeDir}, nil
	}
	return o.base.Stat(p)
}

// hasWrittenFolder reports whether a change writes a file under dir.
func (o overlay) hasWrittenFolder(dir string) bool {
	if dir == "" || dir == "." {
		return false
	}
	parent := path.Dir(dir)
	if parent == "." {
		parent = ""
	}
	e, ok := o.dirs[parent][path.Base(dir)]
	return ok && e.IsDir()
}

func (o overlay) ReadDir(p string) ([]tree.Entry, error) {
	base, err := o.base.ReadDir(p)
	if err != nil && !errors.Is(err, tree.ErrNotExist) {
		return nil, err
	}
	dir := strings.TrimSuffix(p, "/")
	if dir == "." {
		dir = ""
	}
	touched := o.dirs[dir]
	if len(touched) == 0 {
		return base, err
	}
	byName := make(map[string]tree.Entry, len(base)+len(touched))
	for _, e := range base {
		byName[e.Name] = e
	}
	for name, e := range touched {
		if e.Name == "" { // deleted
			delete(byName, name)
			continue
		}
		byName[name] = e
	}
	if len(byName) == 0 && err != nil {
		return nil, err
	}
	out := make([]tree.Entry, 0, len(byName))
	for _, e := range byName {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}
