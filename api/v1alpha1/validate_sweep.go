package v1alpha1

import (
	"fmt"
	"math"
)

// SweepSize is the number of points a sweep expands to before exclusions:
// the product of the matrix lists plus the includes (at least 1: an
// experiment without a sweep has one point). It saturates at math.MaxInt.
func SweepSize(s *Sweep) int {
	if s == nil {
		return 1
	}
	product := 1
	if len(s.Matrix) == 0 {
		product = 0
		if len(s.Include) == 0 {
			product = 1
		}
	}
	for _, values := range s.Matrix {
		if len(values) == 0 {
			return len(s.Include)
		}
		if product > math.MaxInt/len(values) {
			return math.MaxInt
		}
		product *= len(values)
	}
	if product > math.MaxInt-len(s.Include) {
		return math.MaxInt
	}
	return product + len(s.Include)
}

func (c checker) sweep() {
	s := c.e.Spec.Sweep
	if c.e.Spec.Repeat < 0 {
		c.errorf("spec.repeat", "must be at least 1, got %d", c.e.Spec.Repeat)
	} else if c.lim.MaxRepeat > 0 && c.e.Spec.Repeat > c.lim.MaxRepeat {
		c.errorf("spec.repeat", "%d is above the limit %d (limits.maxRepeat)", c.e.Spec.Repeat, c.lim.MaxRepeat)
	}
	if s == nil {
		return
	}
	for _, k := range sortedKeys(s.Matrix) {
		f := "spec.sweep.matrix." + k
		if !paramName.MatchString(k) {
			c.errorf(f, "parameter name %q must be letters, digits and '_', not starting with a digit", k)
		}
		values := s.Matrix[k]
		if len(values) == 0 {
			c.errorf(f, "needs at least one value")
		}
		seen := map[string]int{}
		for i, v := range values {
			key := fmt.Sprintf("%T:%v", v, v)
			if j, dup := seen[key]; dup {
				c.errorf(fmt.Sprintf("%s[%d]", f, i), "value %v repeats %s[%d]; every point must be distinct", v, f, j)
			}
			seen[key] = i
		}
	}
	for i, inc := range s.Include {
		f := fmt.Sprintf("spec.sweep.include[%d]", i)
		if len(inc) == 0 {
			c.errorf(f, "an include entry needs at least one parameter")
		}
		for _, k := range sortedKeys(inc) {
			if !paramName.MatchString(k) {
				c.errorf(f+"."+k, "parameter name %q must be letters, digits and '_', not starting with a digit", k)
			}
		}
	}
	for i, ex := range s.Exclude {
		f := fmt.Sprintf("spec.sweep.exclude[%d]", i)
		if len(ex) == 0 {
			c.errorf(f, "an exclude entry needs at least one parameter")
		}
		for _, k := range sortedKeys(ex) {
			if _, ok := s.Matrix[k]; !ok {
				c.errorf(f+"."+k, "%q is not a matrix parameter%s", k, hint(k, sortedKeys(s.Matrix)))
			}
		}
	}
	size := SweepSize(s)
	repeat := max(c.e.Spec.Repeat, 1)
	if size <= math.MaxInt/repeat {
		size *= repeat
	} else {
		size = math.MaxInt
	}
	if c.lim.MaxRunsPerExperiment > 0 && size > c.lim.MaxRunsPerExperiment {
		c.errorf("spec.sweep", "expands to %s runs; the limit is %d (limits.maxRunsPerExperiment)", countString(size), c.lim.MaxRunsPerExperiment)
	}
}

func countString(n int) string {
	if n == math.MaxInt {
		return "more than 2^63"
	}
	return fmt.Sprint(n)
}
