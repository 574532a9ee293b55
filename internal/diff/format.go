package diff

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
)

// Shared pieces of the text and Markdown renderings.

func num(v float64) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'g', 6, 64)
}

func signed(v float64) string {
	if v > 0 || (v == 0 && !math.Signbit(v)) {
		return "+" + num(v)
	}
	return num(v)
}

// change writes a metric on both sides: "3.14 → 3.12 (-0.02, -0.64%)".
func change(m MetricChange) string {
	switch {
	case m.Base == nil && m.Head == nil:
		if m.BaseText == m.HeadText {
			return m.HeadText
		}
		return orDash(m.BaseText) + " → " + orDash(m.HeadText)
	case m.Base == nil:
		return orDash(m.BaseText) + " → " + num(*m.Head)
	case m.Head == nil:
		return num(*m.Base) + " → " + orDash(m.HeadText)
	case *m.Base == *m.Head:
		return num(*m.Head) + " (=)"
	}
	s := num(*m.Base) + " → " + num(*m.Head) + " (" + signed(*m.Abs)
	if m.Rel != nil {
		s += ", " + percent(*m.Rel)
	}
	return s + ")"
}

func percent(rel float64) string {
	p := 100 * rel
	s := strconv.FormatFloat(p, 'f', 2, 64)
	if math.Abs(p) >= 1000 || math.IsInf(p, 0) || math.IsNaN(p) {
		s = num(p)
	}
	if p >= 0 && !strings.HasPrefix(s, "+") {
		s = "+" + s
	}
	return s + "%"
}

func orDash(s string) string {
	if s == "" {
		return "–"
	}
	return s
}

// single writes one side's metric value.
func single(r Run, name string) string {
	if v, ok := r.Metrics[name]; ok {
		return num(v)
	}
	return r.MetricText[name]
}

func paramValue(r Run, name string) string {
	v, ok := r.Params[name]
	if !ok {
		return ""
	}
	return results.FormatValue(v)
}

// point writes a run's parameters as name=value pairs.
func point(r Run) string {
	names := make([]string, 0, len(r.Params))
	for k := range r.Params {
		names = append(names, k)
	}
	sort.Strings(names)
	parts := make([]string, 0, len(names)+1)
	for _, k := range names {
		parts = append(parts, k+"="+results.FormatValue(r.Params[k]))
	}
	if r.Repeat > 0 {
		parts = append(parts, fmt.Sprintf("repeat=%d", r.Repeat))
	}
	if len(parts) == 0 {
		return "(no parameters)"
	}
	return strings.Join(parts, " ")
}

func status(r Run) string {
	if r.Status == "" {
		return "pending"
	}
	s := r.Status
	if r.Status != string(contract.Succeeded) {
		var why []string
		if r.ExitCode > 0 && !strings.Contains(r.Reason, strconv.Itoa(r.ExitCode)) {
			why = append(why, fmt.Sprintf("exit %d", r.ExitCode))
		}
		if r.Reason != "" {
			why = append(why, r.Reason)
		}
		if len(why) > 0 {
			s += ": " + strings.Join(why, ", ")
		}
	}
	return s
}

func shortCommit(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

// countsLine sums up counts in words, leaving out zeros.
func countsLine(c Counts) string {
	var parts []string
	add := func(n int, what string) {
		if n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n, what))
		}
	}
	add(c.Changed, "changed")
	add(c.Added, "added")
	add(c.Removed, "removed")
	add(c.Pending, "pending")
	add(c.Unchanged, "unchanged")
	if len(parts) == 0 {
		return "no runs"
	}
	s := strings.Join(parts, ", ")
	if c.Failed > 0 {
		s += fmt.Sprintf("; %s on the head", plural(c.Failed, "failed run"))
	}
	if c.Regressions > 0 {
		s += fmt.Sprintf("; %d now failing (succeeded on the base)", c.Regressions)
	}
	if c.Fixed > 0 {
		s += fmt.Sprintf("; %d fixed", c.Fixed)
	}
	return s
}
