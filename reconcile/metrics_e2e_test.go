package reconcile

import (
	"strings"
	"testing"
)

// TestMetricsProblemIsRecordedInRunJSON: a metrics file that cannot be
// read as metrics (not numbers, or a symlink out of the work folder) is
// not a failure of the run, but run.json says why the run has no metrics;
// before, the reason stayed in the run cache and the committed run simply
// showed none.
func TestMetricsProblemIsRecordedInRunJSON(t *testing.T) {
	h := newHarness(t)
	experiment := func(name, script string) string {
		return `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: ` + name + `
spec:
  image: host
  command:
    - sh
    - -c
    - |
      echo ok > out.txt
      ` + script + `
  outputs: [out.txt]
  metrics: m.json
  resources: {cpu: 100m}
`
	}
	h.Commit("metrics", map[string]string{
		"experiments/words.yaml": experiment("words", `echo '{"loss": "high"}' > m.json`),
		"experiments/link.yaml":  experiment("link", `ln -s /etc/hostname m.json`),
		"experiments/good.yaml":  experiment("good", `echo '{"loss": 1}' > m.json`),
	})
	rep := h.reconcile()
	if rep.Executed != 3 || rep.Succeeded != 3 {
		t.Fatalf("report %+v, want 3 runs succeeded (a metrics problem does not fail a run)", rep)
	}
	clone := h.Clone()
	for experiment, want := range map[string]string{
		"words": `metrics file m.json: metric "loss" is string, want a number`,
		"link":  "metrics file m.json is not a regular file",
		"good":  "",
	} {
		dirs := runFolders(t, clone, experiment)
		if len(dirs) != 1 {
			t.Fatalf("%s: %d run folders", experiment, len(dirs))
		}
		if err := h.verifyFolder(dirs[0]); err != nil {
			t.Errorf("%s: %v", experiment, err)
		}
		if got := readRecord(t, dirs[0]).MetricsError; (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("%s: run.json metricsError %q, want %q", experiment, got, want)
		}
	}
}
