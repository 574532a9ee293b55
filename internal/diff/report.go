package diff

// Report is the comparison of two sides.
type Report struct {
	Base SideInfo `json:"base"`
	Head SideInfo `json:"head"`
	// Experiments in name order; unchanged ones are counted, not listed
	// run by run.
	Experiments []Experiment `json:"experiments"`
	// Unverified folders of either side (never compared).
	Unverified []Unverified `json:"unverified,omitempty"`
	Totals     Counts       `json:"totals"`
}

// SideInfo describes one side as the report shows it.
type SideInfo struct {
	// Label names the side for a reader ("main", "HEAD", a folder).
	Label string `json:"label"`
	// Commit is the revision's commit, when the side is one.
	Commit string `json:"commit,omitempty"`
	// Planned tells whether the side's experiment files were planned (its
	// runs are the runs it plans); PlanError says why not, when they could
	// not be.
	Planned   bool   `json:"planned"`
	PlanError string `json:"planError,omitempty"`
	// ResultsRoot is the side's results folder.
	ResultsRoot string `json:"resultsRoot"`
}

// Counts sums up an experiment (or the whole report).
type Counts struct {
	Changed   int `json:"changed"`
	Added     int `json:"added"`
	Removed   int `json:"removed"`
	Unchanged int `json:"unchanged"`
	// Pending: runs the head plans that have no verified result yet.
	Pending int `json:"pending"`
	// Failed: runs of the head whose result is a failure.
	Failed int `json:"failed"`
	// Regressions: succeeded on the base, failed on the head; Fixed the
	// other way round.
	Regressions int `json:"regressions"`
	Fixed       int `json:"fixed"`
	// Stale: verified results of either side that its plan no longer
	// asks for (older code): left out.
	Stale int `json:"stale,omitempty"`
}

func (c *Counts) add(o Counts) {
	c.Changed += o.Changed
	c.Added += o.Added
	c.Removed += o.Removed
	c.Unchanged += o.Unchanged
	c.Pending += o.Pending
	c.Failed += o.Failed
	c.Regressions += o.Regressions
	c.Fixed += o.Fixed
	c.Stale += o.Stale
}

// Experiment is the comparison of one experiment.
type Experiment struct {
	Name   string `json:"name"`
	Counts Counts `json:"counts"`
	// Params and Metrics name the columns, sorted.
	Params  []string `json:"params"`
	Metrics []string `json:"metrics"`
	// Changed pairs runs of the same point whose run IDs differ, and runs
	// of the same ID whose status or metrics differ (a retried failure).
	Changed []Pair `json:"changed,omitempty"`
	Added   []Run  `json:"added,omitempty"`
	Removed []Run  `json:"removed,omitempty"`
	// Pending are runs the head plans that have no result yet.
	Pending []Run `json:"pending,omitempty"`
	// Pages are the experiment's README and plots in the head's results
	// folder (repository paths), for links.
	Pages []string `json:"pages,omitempty"`
}

// Run is one run on one side.
type Run struct {
	ID     string         `json:"id"`
	Params map[string]any `json:"params,omitempty"`
	Repeat int            `json:"repeat,omitempty"`
	// Status is "" for a pending run (no result yet).
	Status   string             `json:"status,omitempty"`
	Reason   string             `json:"reason,omitempty"`
	ExitCode int                `json:"exitCode,omitempty"`
	Metrics  map[string]float64 `json:"metrics,omitempty"`
	// MetricText holds metrics that are not numbers, as JSON text.
	MetricText map[string]string `json:"metricText,omitempty"`
	// Dir is the run's results folder (on its side).
	Dir string `json:"dir,omitempty"`
}

// Pair is a run on both sides.
type Pair struct {
	Base Run `json:"base"`
	Head Run `json:"head"`
	// SameRun: the run IDs are equal (the same run, a different result).
	SameRun bool `json:"sameRun,omitempty"`
	// StatusChange is "Succeeded → Failed" and the like; "" when equal.
	StatusChange string `json:"statusChange,omitempty"`
	// Regression: succeeded on the base, failed on the head.
	Regression bool `json:"regression,omitempty"`
	Fixed      bool `json:"fixed,omitempty"`
	// Metrics lists every metric either side has.
	Metrics []MetricChange `json:"metrics,omitempty"`
}

// MetricChange is one metric on both sides. Base or Head is nil when that
// side lacks it; Abs is Head-Base; Rel is Abs/|Base| (nil when Base is 0 or
// either is missing).
type MetricChange struct {
	Name string   `json:"name"`
	Base *float64 `json:"base,omitempty"`
	Head *float64 `json:"head,omitempty"`
	Abs  *float64 `json:"abs,omitempty"`
	Rel  *float64 `json:"rel,omitempty"`
	// BaseText and HeadText are metrics that are not numbers.
	BaseText string `json:"baseText,omitempty"`
	HeadText string `json:"headText,omitempty"`
}

// Unverified is a folder that did not verify, on one side.
type Unverified struct {
	Side   string `json:"side"` // "base" or "head"
	Dir    string `json:"dir"`
	Reason string `json:"reason"`
}

// Changed reports whether the head differs from the base at all.
func (r *Report) Changed() bool {
	t := r.Totals
	return t.Changed+t.Added+t.Removed+t.Pending > 0
}
