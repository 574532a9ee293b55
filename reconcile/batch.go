package reconcile

import (
	"context"
	"fmt"
	"maps"
	"path"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/tree"
)

// batcher collects finished run folders and commits them every interval
// and at the end. A batch whose push fails stays pending and goes with the
// next one.
type batcher struct {
	r      *Reconciler
	t      Target
	layout results.Layout

	mu      sync.Mutex
	pending map[string][]byte // repository path -> content
	runs    map[string]*results.Record
	// known are run folders whose content is known to be in the branch
	// (verified at planning, or committed by this batcher).
	known   map[string]results.Run
	commits []string
	// plots are the plots each experiment's spec chooses (spec.plots);
	// set before start, read-only after.
	plots map[string][]results.PlotChoice

	done chan struct{}
	wg   sync.WaitGroup
}

func newBatcher(r *Reconciler, t Target, layout results.Layout, known map[string]results.Run) *batcher {
	if known == nil {
		known = map[string]results.Run{}
	}
	return &batcher{r: r, t: t, layout: layout, pending: map[string][]byte{}, runs: map[string]*results.Record{},
		known: known, done: make(chan struct{})}
}

// add queues one run folder.
func (b *batcher) add(dir string, rec *results.Record, files map[string][]byte) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for name, data := range files {
		b.pending[path.Join(dir, name)] = data
	}
	b.runs[dir] = rec
}

// start commits every interval until stop.
func (b *batcher) start(ctx context.Context) {
	b.wg.Add(1)
	go func() {
		defer b.wg.Done()
		tick := time.NewTicker(b.r.batchInterval())
		defer tick.Stop()
		for {
			select {
			case <-b.done:
				return
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = b.flush(ctx)
			}
		}
	}()
}

// stop ends the ticker and commits what is left. It commits even when ctx
// is already cancelled (a shutdown must not lose finished results), within
// a bounded grace period.
func (b *batcher) stop(ctx context.Context) ([]string, error) {
	close(b.done)
	b.wg.Wait()
	flushCtx := ctx
	if ctx.Err() != nil {
		var cancel context.CancelFunc
		flushCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 2*time.Minute)
		defer cancel()
	}
	err := b.flush(flushCtx)
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]string(nil), b.commits...), err
}

// flush commits the pending folders as one commit.
func (b *batcher) flush(ctx context.Context) error {
	b.mu.Lock()
	if len(b.runs) == 0 {
		b.mu.Unlock()
		return nil
	}
	files := maps.Clone(b.pending)
	runs := maps.Clone(b.runs)
	b.mu.Unlock()

	msg := b.r.commitMessage(b.t, runs)
	known := b.knownFunc()
	var report results.MergeReport
	commit, err := b.t.Pusher.CommitBack(ctx, msg, files, func(head tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
		changes, rep, err := b.layout.Merge(head, ours, results.MergeOptions{Replace: b.replace(runs), Known: known, Verify: b.r.summaryCheck,
			Plots: b.plots, Reproductions: b.r.reproductions,
			// The batch holds only folders this process built and signed.
			OwnBatch: true})
		report = rep
		return changes, err
	})
	if err != nil {
		b.r.emit(b.t, Event{Kind: EventCommitFailed, Commit: b.t.Commit, Runs: len(runs), Err: err})
		return fmt.Errorf("commit results of %d runs: %w", len(runs), err)
	}
	b.mu.Lock()
	for p := range files {
		delete(b.pending, p)
	}
	for d := range runs {
		delete(b.runs, d)
	}
	// What we wrote is now in the branch; what the head kept is not ours.
	for _, group := range [][]string{report.Added, report.Replaced, report.Identical} {
		for _, d := range group {
			if rec := runs[d]; rec != nil {
				run := results.Run{Record: rec}
				run.Metrics, run.MetricText, _ = results.ParseMetrics(files[path.Join(d, results.MetricsFile)])
				b.known[d] = run
			}
		}
	}
	if commit != "" {
		b.commits = append(b.commits, commit)
	}
	b.mu.Unlock()
	b.r.emit(b.t, Event{Kind: EventCommitted, Commit: b.t.Commit, ResultsCommit: commit, Runs: len(runs)})
	return nil
}

// knownFunc snapshots the known folders for one merge.
func (b *batcher) knownFunc() func(string) (results.Run, bool) {
	b.mu.Lock()
	known := maps.Clone(b.known)
	b.mu.Unlock()
	return func(dir string) (results.Run, bool) {
		run, ok := known[dir]
		return run, ok
	}
}

// replace lets our folder replace one in the head that is not genuine, or
// that is a genuine failure our run retried under new scheduling fields.
func (b *batcher) replace(ours map[string]*results.Record) func(tree.Reader, string) bool {
	return func(head tree.Reader, dir string) bool {
		mine := ours[dir]
		if mine == nil {
			return false
		}
		_, trusted, err := b.r.keys()
		if err != nil {
			return false // keep theirs: nothing of ours is signed anyway
		}
		theirs, _, err := verifyFolder(head, dir, mine.RunID, mine.Experiment, trusted)
		if err != nil {
			return true
		}
		return theirs.Status != contract.Succeeded && theirs.Scheduling != mine.Scheduling
	}
}

// CommitSummary is what a results commit carries, for
// Reconciler.CommitMessage.
type CommitSummary struct {
	// Source is the commit the runs were planned from, Ref its ref.
	Source, Ref string
	// Runs = Succeeded + Failed.
	Runs, Succeeded, Failed int
	// Experiments are sorted by name.
	Experiments []ExperimentSummary
}

// ExperimentSummary counts one experiment's runs in a results commit.
type ExperimentSummary struct {
	Name              string
	Succeeded, Failed int
}

// ShortSource is the source commit's first 12 hex digits.
func (s CommitSummary) ShortSource() string { return contract.ShortID(s.Source) }

func summarizeBatch(t Target, runs map[string]*results.Record) CommitSummary {
	per := map[string]*ExperimentSummary{}
	sum := CommitSummary{Source: t.Commit, Ref: t.Ref, Runs: len(runs)}
	for _, rec := range runs {
		e := per[rec.Experiment]
		if e == nil {
			e = &ExperimentSummary{Name: rec.Experiment}
			per[rec.Experiment] = e
		}
		if rec.Status == contract.Succeeded {
			e.Succeeded++
			sum.Succeeded++
		} else {
			e.Failed++
			sum.Failed++
		}
	}
	for _, e := range per {
		sum.Experiments = append(sum.Experiments, *e)
	}
	sort.Slice(sum.Experiments, func(i, j int) bool { return sum.Experiments[i].Name < sum.Experiments[j].Name })
	return sum
}

// commitMessage writes a batch's message with r.CommitMessage, or the
// default summary; the source commit trailer always ends it.
func (r *Reconciler) commitMessage(t Target, runs map[string]*results.Record) string {
	trailer := fmt.Sprintf("Expsync-Source-Commit: %s\n", t.Commit)
	if r.CommitMessage != nil {
		msg, err := r.CommitMessage(summarizeBatch(t, runs))
		// gitsource reads "{{" as a template of its own: a message that
		// holds one (the user's data, not a template) falls back.
		if err == nil && strings.TrimSpace(msg) != "" && !strings.Contains(msg, "{{") {
			return strings.TrimRight(msg, "\n") + "\n\n" + trailer
		}
	}
	return commitMessage(t, runs)
}

// commitMessage summarises a batch: a subject line and one line per
// experiment.
func commitMessage(t Target, runs map[string]*results.Record) string {
	type tally struct{ ok, failed int }
	per := map[string]*tally{}
	for _, rec := range runs {
		tl := per[rec.Experiment]
		if tl == nil {
			tl = &tally{}
			per[rec.Experiment] = tl
		}
		if rec.Status == contract.Succeeded {
			tl.ok++
		} else {
			tl.failed++
		}
	}
	names := make([]string, 0, len(per))
	for n := range per {
		names = append(names, n)
	}
	sort.Strings(names)
	var b strings.Builder
	noun := "runs"
	if len(runs) == 1 {
		noun = "run"
	}
	fmt.Fprintf(&b, "expsync: results of %d %s for %s\n\n", len(runs), noun, contract.ShortID(t.Commit))
	for _, n := range names {
		fmt.Fprintf(&b, "- %s: %d succeeded, %d failed\n", n, per[n].ok, per[n].failed)
	}
	fmt.Fprintf(&b, "\nExpsync-Source-Commit: %s\n", t.Commit)
	return b.String()
}
