package render

import (
	"strings"
	"testing"

	"github.com/expsync/expsync/api/v1alpha1"
)

// FuzzRenderJob renders runs with fuzzed names, IDs, resources, exit codes
// and placement: rendering either refuses with an error or yields objects
// whose names and labels the API server accepts (checkObjects).
func FuzzRenderJob(f *testing.F) {
	f.Add("pi-montecarlo", testID, "500m", "1Gi", 1, "research", int32(75), "gpu")
	f.Add("a", strings.Repeat("f", 64), "", "", 0, "", int32(0), "")
	f.Add(strings.Repeat("x-", 30), testID, "lots", "-1", -2, "q", int32(300), "k=v")
	// Found by the fuzzer in CI: an uppercase hex digit encoded to the same
	// label as the lowercase ID while the annotation kept the capital.
	f.Add("pi-montecarlo", "3f9c0a1b2c3d4e5f607182C3a4b5c6d7e8f90112233445566778899aabbccdde", "", "", 0, "", int32(0), "")
	f.Fuzz(func(t *testing.T, name, id, cpu, memory string, gpu int, queue string, code int32, nodeKey string) {
		// The loader only lets DNS-1123 labels of at most 40 characters
		// through as experiment names; the renderer must cope with those.
		if len(name) == 0 || len(name) > v1alpha1.MaxNameLength || strings.Trim(name, "abcdefghijklmnopqrstuvwxyz0123456789-") != "" ||
			name[0] == '-' || name[len(name)-1] == '-' {
			return
		}
		run := testRun(
			func(r *Run) { r.Experiment, r.ID, r.Contract.RunID = name, id, id },
			withSpec(func(s *v1alpha1.ExperimentSpec) {
				s.Resources = v1alpha1.Resources{CPU: cpu, Memory: memory, GPU: gpu}
				if len(queue) <= 63 && strings.Trim(queue, "abcdefghijklmnopqrstuvwxyz0123456789-") == "" && queue != "" &&
					queue[0] != '-' && queue[len(queue)-1] != '-' {
					s.Queue = queue
				}
				if nodeKey != "" {
					s.NodeSelector = map[string]string{"kubernetes.io/hostname": "node"}
				}
			}),
			withRetries(2, code),
		)
		objs, err := RenderJobObjects(run, testOptions())
		if err != nil {
			if !strings.Contains(err.Error(), name) {
				t.Errorf("error %q does not name the experiment", err)
			}
			return
		}
		checkObjects(t, objs)
	})
}

// FuzzRunIDFromLabelValue decodes arbitrary label values: never a panic,
// and whatever decodes encodes back to the same value.
func FuzzRunIDFromLabelValue(f *testing.F) {
	f.Add("h6oaugzmhvhf6ydrqkj2jnog27upsaisem2ekvthpcezvk54zxpa")
	f.Add("")
	f.Add("AAAA")
	// Same bytes, different unused trailing bits: must not decode.
	f.Add("h6oaugzmhvhf6ydrqkj2jnog27upsaisem2ekvthpcezvk54zxpb")
	f.Fuzz(func(t *testing.T, value string) {
		id, err := RunIDFromLabelValue(value)
		if err != nil {
			return
		}
		back, err := RunIDLabelValue(id)
		if err != nil || back != value {
			t.Errorf("%q decodes to %s, which encodes to %q (%v)", value, id, back, err)
		}
	})
}
