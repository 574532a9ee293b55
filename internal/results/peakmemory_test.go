package results

import "testing"

func TestFormatPeakMemory(t *testing.T) {
	for _, tc := range []struct {
		usage Usage
		want  string
	}{
		{Usage{MaxRSSBytes: 64 << 20, MaxRSSMethod: "rusage"}, "64.0 MiB"},
		{Usage{MaxRSSBytes: 3 << 20, MaxRSSMethod: "sampled"}, "≥ 3.0 MiB"},
		{Usage{MaxRSSMethod: "unmeasured"}, "too short"},
		{Usage{MaxRSSMethod: "sampled"}, "too short"},
		{Usage{MaxRSSBytes: 2 << 20}, "2.0 MiB"}, // records written before the method was recorded
		{Usage{}, ""},
	} {
		if got := formatPeakMemory(tc.usage); got != tc.want {
			t.Errorf("formatPeakMemory(%+v) = %q, want %q", tc.usage, got, tc.want)
		}
	}
}
