package v1alpha1

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxPlots bounds spec.plots: each plot is an SVG committed with every
// results commit of the experiment.
const MaxPlots = 8

// MaxMetricNameLength bounds a plotted metric's name.
const MaxMetricNameLength = 128

// plots checks spec.plots: each names a plausible metric key and a swept
// parameter whose values are numbers (the x axis). A missing against is
// filled in when the sweep varies exactly one parameter.
func (c checker) plots() {
	plots := c.e.Spec.Plots
	if len(plots) == 0 {
		return
	}
	if len(plots) > MaxPlots {
		c.errorf("spec.plots", "%d plots; the limit is %d", len(plots), MaxPlots)
	}
	if c.e.Spec.Metrics == "" && !c.e.bad["spec.metrics"] {
		c.errorf("spec.plots", "plots need metrics: set spec.metrics to the JSON file of numbers each run writes")
	}
	swept := sweptValues(c.e.Spec.Sweep)
	names := sortedKeys(swept)
	seen := map[Plot]int{}
	for i := range plots {
		p := &plots[i]
		f := fmt.Sprintf("spec.plots[%d]", i)
		c.plotMetric(f, p.Metric)
		switch {
		case len(names) == 0:
			c.errorf(f, "plots need a sweep: add spec.sweep (matrix or include) varying the parameter to plot against, or remove spec.plots")
			continue
		case p.Against == "" && len(names) == 1:
			p.Against = names[0] // the only choice
		case p.Against == "":
			c.errorf(f, "against: missing; the sweep varies %s, name the one for the x axis", strings.Join(names, ", "))
			continue
		}
		values, ok := swept[p.Against]
		if !ok {
			if _, fixed := c.e.Spec.Params[p.Against]; fixed {
				c.errorf(f+".against", "%q is fixed (spec.params), not swept; plot against one of %s", p.Against, strings.Join(names, ", "))
			} else {
				c.errorf(f+".against", "%q is not a swept parameter%s", p.Against, hint(p.Against, names))
			}
			continue
		}
		for _, v := range values {
			if !isNumber(v) {
				c.errorf(f+".against", "parameter %q takes the value %s, not a number; the x axis needs numbers (plot against another parameter, or sweep numbers)", p.Against, quoteValue(v))
				break
			}
		}
		if j, dup := seen[*p]; dup {
			c.errorf(f, "plots %q against %q like spec.plots[%d]; remove one", p.Metric, p.Against, j)
		}
		seen[*p] = i
	}
}

// plotMetric checks that a metric name could be a key of the metrics file
// and a readable axis label.
func (c checker) plotMetric(f, m string) {
	switch {
	case m == "" && c.e.bad[f+".metric"]:
	case m == "":
		c.errorf(f, "metric: missing; name a key of the metrics file (spec.metrics) to plot")
	case len(m) > MaxMetricNameLength:
		c.errorf(f+".metric", "is %d bytes; the limit is %d", len(m), MaxMetricNameLength)
	case !utf8.ValidString(m) || strings.TrimSpace(m) != m || strings.IndexFunc(m, unicode.IsControl) >= 0:
		c.errorf(f+".metric", "%q must be a key of the metrics file: printable text without leading or trailing spaces", m)
	}
}

// sweptValues maps every parameter a sweep sets (matrix or include) to the
// values it takes there.
func sweptValues(s *Sweep) map[string][]any {
	out := map[string][]any{}
	if s == nil {
		return out
	}
	for k, values := range s.Matrix {
		out[k] = append(out[k], values...)
	}
	for _, inc := range s.Include {
		for k, v := range inc {
			out[k] = append(out[k], v)
		}
	}
	return out
}

func isNumber(v any) bool {
	switch v.(type) {
	case int, int64, int32, float64, float32, uint64:
		return true
	}
	return false
}

func quoteValue(v any) string {
	if s, ok := v.(string); ok {
		return fmt.Sprintf("%q", s)
	}
	return fmt.Sprint(v)
}
