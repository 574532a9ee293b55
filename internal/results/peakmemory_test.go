package results

import (
	"testing"

	"github.com/expsync/expsync/contract"
)

func TestFormatPeakMemory(t *testing.T) {
	for _, tc := range []struct {
		usage contract.Usage
		want  string
	}{
		{contract.Usage{MaxRSSBytes: 64 << 20, MaxRSSMethod: "rusage"}, "64.0 MiB"},
		{contract.Usage{MaxRSSBytes: 3 << 20, MaxRSSMethod: "sampled"}, "≥ 3.0 MiB"},
		{contract.Usage{MaxRSSMethod: "unmeasured"}, "too short"},
		{contract.Usage{MaxRSSMethod: "sampled"}, "too short"},
		{contract.Usage{MaxRSSBytes: 2 << 20}, "2.0 MiB"}, // records written before the method was recorded
		{contract.Usage{}, ""},
	} {
		if got := formatPeakMemory(tc.usage); got != tc.want {
			t.Errorf("formatPeakMemory(%+v) = %q, want %q", tc.usage, got, tc.want)
		}
	}
}
