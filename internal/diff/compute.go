package diff

import (
	"math"
	"sort"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
)

// Compute compares two sides.
func Compute(base, head Side, opts Options) (*Report, error) {
	b, err := load(base, opts)
	if err != nil {
		return nil, err
	}
	h, err := load(head, opts)
	if err != nil {
		return nil, err
	}
	rep := &Report{Base: b.info, Head: h.info}
	names := map[string]bool{}
	for n := range b.runs {
		names[n] = true
	}
	for n := range h.runs {
		names[n] = true
	}
	for _, name := range sortedNames(names) {
		e := compareExperiment(name, b.runs[name], h.runs[name])
		e.Counts.Stale = b.stale[name] + h.stale[name]
		e.Pages = h.pages[name]
		rep.Totals.add(e.Counts)
		rep.Experiments = append(rep.Experiments, e)
	}
	for _, u := range b.unverified {
		rep.Unverified = append(rep.Unverified, Unverified{Side: "base", Dir: u.Dir, Reason: u.Reason})
	}
	for _, u := range h.unverified {
		rep.Unverified = append(rep.Unverified, Unverified{Side: "head", Dir: u.Dir, Reason: u.Reason})
	}
	sort.SliceStable(rep.Unverified, func(i, j int) bool {
		if rep.Unverified[i].Side != rep.Unverified[j].Side {
			return rep.Unverified[i].Side == "head" // the head's first: they are the pull request's
		}
		return rep.Unverified[i].Dir < rep.Unverified[j].Dir
	})
	return rep, nil
}

// compareExperiment matches one experiment's runs: by run ID, then by
// sweep point.
func compareExperiment(name string, base, head []Run) Experiment {
	e := Experiment{Name: name}
	byID := map[string]*Run{}
	byPoint := map[string][]*Run{}
	for i := range base {
		r := &base[i]
		byID[r.ID] = r
		k := pointKey(r.Params, r.Repeat)
		byPoint[k] = append(byPoint[k], r)
	}
	used := map[*Run]bool{}
	var unmatched []*Run
	// Same run ID first: a run that is on both sides is never "changed
	// code", whatever other runs share its point.
	for i := range head {
		h := &head[i]
		if b, ok := byID[h.ID]; ok && !used[b] {
			used[b] = true
			e.pair(*b, *h, true)
			continue
		}
		unmatched = append(unmatched, h)
	}
	for _, h := range unmatched {
		var match *Run
		for _, b := range byPoint[pointKey(h.Params, h.Repeat)] {
			if !used[b] {
				match = b
				break
			}
		}
		if match == nil {
			if h.Status == "" {
				e.Pending = append(e.Pending, *h)
				e.Counts.Pending++
			} else {
				e.Added = append(e.Added, *h)
				e.Counts.Added++
				e.countHead(*h)
			}
			continue
		}
		used[match] = true
		e.pair(*match, *h, false)
	}
	for i := range base {
		if !used[&base[i]] {
			e.Removed = append(e.Removed, base[i])
			e.Counts.Removed++
		}
	}
	e.Params, e.Metrics = columns(base, head)
	sortRuns(e.Added)
	sortRuns(e.Removed)
	sortRuns(e.Pending)
	sort.SliceStable(e.Changed, func(i, j int) bool {
		a, b := e.Changed[i], e.Changed[j]
		if a.Regression != b.Regression {
			return a.Regression // regressions first
		}
		return runLess(a.Head, b.Head)
	})
	return e
}

func (e *Experiment) countHead(h Run) {
	if h.Status != "" && h.Status != string(contract.Succeeded) {
		e.Counts.Failed++
	}
}

// pair records base and head of one point: unchanged when they are the
// same run with the same outcome, changed otherwise; a head without a
// result yet is pending.
func (e *Experiment) pair(b, h Run, same bool) {
	if h.Status == "" {
		if same && b.Status != "" {
			// The base's result is this run's result: the head's results
			// folder just does not hold it (a results branch started
			// before it was committed).
			e.Counts.Unchanged++
			e.countHead(b)
			return
		}
		e.Pending = append(e.Pending, h)
		e.Counts.Pending++
		return
	}
	e.countHead(h)
	p := Pair{Base: b, Head: h, SameRun: same, Metrics: metricChanges(b, h)}
	if b.Status != h.Status {
		p.StatusChange = orPending(b.Status) + " → " + h.Status
		ok := string(contract.Succeeded)
		p.Regression = b.Status == ok && h.Status != ok
		p.Fixed = b.Status != "" && b.Status != ok && h.Status == ok
	}
	if same && p.StatusChange == "" && !metricsDiffer(p.Metrics) {
		e.Counts.Unchanged++
		return
	}
	if p.Regression {
		e.Counts.Regressions++
	}
	if p.Fixed {
		e.Counts.Fixed++
	}
	e.Changed = append(e.Changed, p)
	e.Counts.Changed++
}

func orPending(s string) string {
	if s == "" {
		return "pending"
	}
	return s
}

// metricChanges lists every metric of either run, by name.
func metricChanges(b, h Run) []MetricChange {
	names := map[string]bool{}
	for n := range b.Metrics {
		names[n] = true
	}
	for n := range h.Metrics {
		names[n] = true
	}
	for n := range b.MetricText {
		names[n] = true
	}
	for n := range h.MetricText {
		names[n] = true
	}
	var out []MetricChange
	for _, n := range sortedNames(names) {
		m := MetricChange{Name: n, BaseText: b.MetricText[n], HeadText: h.MetricText[n]}
		if v, ok := b.Metrics[n]; ok {
			m.Base = &v
		}
		if v, ok := h.Metrics[n]; ok {
			m.Head = &v
		}
		if m.Base != nil && m.Head != nil {
			abs := *m.Head - *m.Base
			m.Abs = &abs
			if *m.Base != 0 {
				rel := abs / math.Abs(*m.Base)
				m.Rel = &rel
			}
		}
		out = append(out, m)
	}
	return out
}

func metricsDiffer(ms []MetricChange) bool {
	for _, m := range ms {
		if (m.Base == nil) != (m.Head == nil) || m.BaseText != m.HeadText {
			return true
		}
		if m.Base != nil && *m.Base != *m.Head && !(math.IsNaN(*m.Base) && math.IsNaN(*m.Head)) {
			return true
		}
	}
	return false
}

// columns are the parameter and metric names of an experiment's runs.
func columns(runs ...[]Run) (params, metrics []string) {
	ps, ms := map[string]bool{}, map[string]bool{}
	for _, side := range runs {
		for _, r := range side {
			for k := range r.Params {
				ps[k] = true
			}
			for k := range r.Metrics {
				ms[k] = true
			}
			for k := range r.MetricText {
				ms[k] = true
			}
		}
	}
	return sortedNames(ps), sortedNames(ms)
}

func sortRuns(rs []Run) { sort.SliceStable(rs, func(i, j int) bool { return runLess(rs[i], rs[j]) }) }

// runLess orders runs by their parameters as the READMEs do, then repeat
// and ID.
func runLess(a, b Run) bool {
	if c := results.CompareParams(a.Params, b.Params); c != 0 {
		return c < 0
	}
	if a.Repeat != b.Repeat {
		return a.Repeat < b.Repeat
	}
	return a.ID < b.ID
}
