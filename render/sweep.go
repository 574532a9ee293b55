package render

import (
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"

	"github.com/expsync/expsync/api/v1alpha1"
)

// point is one set of sweep values before the defaults are merged in, with
// where it came from for errors.
type point struct {
	values map[string]any
	field  string // "spec.sweep.include[2]" for includes, "spec.sweep" otherwise
}

// expandSweep returns the points of s in a deterministic order: the
// cartesian product of the matrix (parameters sorted by name, the first name
// varying slowest, values in their written order) without the excluded
// points, then the include entries in their written order. Without a sweep
// there is one empty point.
func expandSweep(s *v1alpha1.Sweep) []point {
	if s == nil || (len(s.Matrix) == 0 && len(s.Include) == 0) {
		return []point{{values: map[string]any{}, field: "spec"}}
	}
	var out []point
	if len(s.Matrix) > 0 {
		keys := make([]string, 0, len(s.Matrix))
		for k := range s.Matrix {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		out = make([]point, 0, v1alpha1.SweepSize(s))
		idx := make([]int, len(keys))
		for {
			values := make(map[string]any, len(keys))
			for i, k := range keys {
				values[k] = s.Matrix[k][idx[i]]
			}
			if !excluded(values, s.Exclude) {
				out = append(out, point{values: values, field: "spec.sweep"})
			}
			// Odometer: advance the last key, carry to the left.
			i := len(keys) - 1
			for ; i >= 0; i-- {
				idx[i]++
				if idx[i] < len(s.Matrix[keys[i]]) {
					break
				}
				idx[i] = 0
			}
			if i < 0 {
				break
			}
		}
	}
	for i, inc := range s.Include {
		out = append(out, point{values: inc, field: fmt.Sprintf("spec.sweep.include[%d]", i)})
	}
	return out
}

func excluded(values map[string]any, exclude []map[string]any) bool {
	for _, ex := range exclude {
		match := true
		for k, v := range ex {
			if !sameValue(values[k], v) {
				match = false
				break
			}
		}
		if match {
			return true
		}
	}
	return false
}

// sameValue compares parameter values as their canonical JSON would: 2 and
// 2.0 are the same number.
func sameValue(a, b any) bool {
	fa, aNum := number(a)
	fb, bNum := number(b)
	if aNum || bNum {
		return aNum && bNum && fa == fb
	}
	return a == b
}

func number(v any) (float64, bool) {
	switch v := v.(type) {
	case int:
		return float64(v), true
	case int64:
		return float64(v), true
	case float64:
		return v, true
	}
	return math.NaN(), false
}

// pointKey is a canonical string of a full parameter set, to find points
// that would get the same ID.
func pointKey(params map[string]any) string {
	keys := make([]string, 0, len(params))
	for k := range params {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for _, k := range keys {
		b.WriteString(strconv.Quote(k))
		b.WriteByte('=')
		switch v := params[k].(type) {
		case string:
			b.WriteString(strconv.Quote(v))
		default:
			s, _ := FormatParam(v)
			b.WriteString(s)
		}
		b.WriteByte(';')
	}
	return b.String()
}

func sortStrings(s []string) { sort.Strings(s) }
