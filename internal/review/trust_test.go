package review

import (
	"testing"

	"github.com/expsync/expsync/tree"
)

// TestChangedPaths tells a pull request that changes only the results
// folder from one that changes anything else.
func TestChangedPaths(t *testing.T) {
	base := map[string]string{
		"experiments/pi/pi.yaml":       "spec",
		"experiments/pi/estimate.py":   "code",
		"results/pi/README.md":         "table",
		"results/pi/aaaa/run.json":     "{}",
		"out/results/pi/aaaa/run.json": "{}",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			if v == "" {
				delete(m, k)
			} else {
				m[k] = v
			}
		}
		return m
	}
	for _, c := range []struct {
		name             string
		head             map[string]string
		root             string
		changed, outside bool
	}{
		{"nothing", base, "results", false, false},
		{"a forged folder only", with(map[string]string{"results/pi/ffff/run.json": "{}"}), "results", true, false},
		{"a README edited only", with(map[string]string{"results/pi/README.md": "all green"}), "results", true, false},
		{"results and code", with(map[string]string{"results/pi/ffff/run.json": "{}", "experiments/pi/estimate.py": "new"}), "results", true, true},
		{"code only", with(map[string]string{"experiments/pi/estimate.py": "new"}), "results", true, true},
		{"a file deleted outside", with(map[string]string{"experiments/pi/estimate.py": ""}), "results", true, true},
		{"a nested results folder", with(map[string]string{"out/results/pi/ffff/run.json": "{}"}), "out/results", true, false},
		{"beside a nested results folder", with(map[string]string{"out/other.txt": "x"}), "out/results", true, true},
	} {
		changed, outside, err := changedPaths(tree.MemoryOf(base), tree.MemoryOf(c.head), "", c.root)
		if err != nil || changed != c.changed || outside != c.outside {
			t.Errorf("%s: changed %v, outside %v, %v; want %v, %v", c.name, changed, outside, err, c.changed, c.outside)
		}
	}
}
