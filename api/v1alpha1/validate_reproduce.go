package v1alpha1

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/expsync/expsync/tree"
)

// MaxReproduceEntries bounds spec.reproduce.exact and spec.reproduce.metrics
// each: every entry is shown in each reproduction's verdict.
const MaxReproduceEntries = 256

// reproduce checks spec.reproduce: exact names declared outputs (a file,
// a folder output, or a file or folder inside one), metric tolerances name
// plausible metric keys, once each, with finite non-negative abs and rel of
// which at least one is set, and metrics is declared.
func (c checker) reproduce() {
	r := c.e.Spec.Reproduce
	if r == nil {
		return
	}
	c.reproduceExact(r.Exact)
	if len(r.Metrics) == 0 {
		return
	}
	if len(r.Metrics) > MaxReproduceEntries {
		c.errorf("spec.reproduce.metrics", "%d tolerances; the limit is %d", len(r.Metrics), MaxReproduceEntries)
	}
	if c.e.Spec.Metrics == "" && !c.e.bad["spec.metrics"] {
		c.errorf("spec.reproduce.metrics", "metric tolerances need metrics: set spec.metrics to the JSON file of numbers each run writes")
	}
	seen := map[string]int{}
	for i, t := range r.Metrics {
		f := fmt.Sprintf("spec.reproduce.metrics[%d]", i)
		switch m := t.Name; {
		case m == "" && c.e.bad[f+".name"]:
		case m == "":
			c.errorf(f, "name: missing; name a key of the metrics file (spec.metrics) this tolerance applies to")
		case len(m) > MaxMetricNameLength:
			c.errorf(f+".name", "is %d bytes; the limit is %d", len(m), MaxMetricNameLength)
		case !utf8.ValidString(m) || strings.TrimSpace(m) != m || strings.IndexFunc(m, unicode.IsControl) >= 0:
			c.errorf(f+".name", "%q must be a key of the metrics file: printable text without leading or trailing spaces", m)
		default:
			if j, dup := seen[m]; dup {
				c.errorf(f+".name", "%q already has a tolerance (spec.reproduce.metrics[%d]); give each metric one", m, j)
			}
			seen[m] = i
		}
		switch {
		case t.Abs < 0:
			c.errorf(f+".abs", "%v is negative; a tolerance is a distance (0 or more)", t.Abs)
		case t.Rel < 0:
			c.errorf(f+".rel", "%v is negative; a tolerance is a fraction of the attested value (0 or more)", t.Rel)
		case t.Abs == 0 && t.Rel == 0 && !c.e.bad[f+".abs"] && !c.e.bad[f+".rel"]:
			c.errorf(f, "give abs (the largest difference allowed) or rel (a fraction of the attested value), or both; a metric without a tolerance must be equal")
		}
	}
}

// reproduceExact checks that each exact entry names a declared output or
// lies inside a declared folder output, once.
func (c checker) reproduceExact(exact []string) {
	if len(exact) > MaxReproduceEntries {
		c.errorf("spec.reproduce.exact", "%d entries; the limit is %d", len(exact), MaxReproduceEntries)
	}
	var declared []string
	for _, o := range c.e.Spec.Outputs {
		if clean, err := tree.Clean(strings.TrimSuffix(o, "/")); err == nil && clean != "" {
			if strings.HasSuffix(o, "/") {
				clean += "/"
			}
			declared = append(declared, clean)
		}
	}
	seen := map[string]int{}
	for i, e := range exact {
		f := fmt.Sprintf("spec.reproduce.exact[%d]", i)
		p, ok := c.relPath(f, e)
		if !ok {
			continue
		}
		if strings.HasSuffix(e, "/") {
			p += "/"
		}
		if j, dup := seen[p]; dup {
			c.errorf(f, "%q is listed twice (spec.reproduce.exact[%d])", e, j)
			continue
		}
		seen[p] = i
		if !coveredByOutputs(p, declared) {
			c.errorf(f, "%q is not a declared output (spec.outputs: %s); list outputs, or files and folders inside a folder output", e, strings.Join(declared, ", "))
		}
	}
}

// coveredByOutputs tells whether p (a file, or a folder ending in "/")
// is one of the declared outputs or lies inside a declared folder.
func coveredByOutputs(p string, declared []string) bool {
	for _, d := range declared {
		if p == d || (strings.HasSuffix(d, "/") && strings.HasPrefix(p, d)) {
			return true
		}
	}
	return false
}
