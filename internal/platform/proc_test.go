package platform

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseVmHWM(t *testing.T) {
	for in, want := range map[string]int64{
		"Name:\tx\nVmPeak:\t  100 kB\nVmHWM:\t    1724 kB\nVmRSS:\t 1 kB\n": 1724 * 1024,
		"Name:\tx\nState:\tZ (zombie)\n":                                    -1,
		"VmHWM:\n":                                                          -1,
		"VmHWM:\tlots kB\n":                                                 -1,
	} {
		got, ok := parseVmHWM([]byte(in))
		if !ok {
			got = -1
		}
		if got != want {
			t.Errorf("parseVmHWM(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestParseStat(t *testing.T) {
	line := func(comm string) string {
		return "4242 (" + comm + ") S 17 4242 4242 0 -1 4194560 1 0 0 0 0 0 0 0 20 0 1 0 987654 1000 10 18446744073709551615\n"
	}
	want := ProcStat{State: 'S', PPID: 17, PGRP: 4242, StartTicks: 987654}
	for _, comm := range []string{"sleep", "a b", "x) S 1 2 3 (y", ""} {
		got, err := parseStat([]byte(line(comm)))
		if err != nil {
			t.Fatalf("command %q: %v", comm, err)
		}
		if d := cmp.Diff(want, got); d != "" {
			t.Errorf("command %q (-want +got):\n%s", comm, d)
		}
	}
	for _, bad := range []string{"", "4242 sleep S 1", "4242 (x) S 17 4242", "4242 (x) S x 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 1"} {
		if st, err := parseStat([]byte(bad)); err == nil {
			t.Errorf("parseStat(%q) = %+v, want an error", bad, st)
		}
	}
}
