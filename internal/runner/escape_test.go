package runner

import (
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
)

// TestSetsidDescendantsEndWithTheRun: a process that leaves the
// run's process group (setsid) is ended when the attempt ends, whether the
// run succeeded or timed out, if the runner saw it while the run lived.
func TestSetsidDescendantsEndWithTheRun(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		want         contract.Status
	}{
		{"run succeeds", `setsid sleep 301 >/dev/null 2>&1 </dev/null & echo $! > "$PIDFILE"; sleep 0.1; echo ok`, 0, contract.Succeeded},
		{"run times out", `trap '' TERM; setsid sleep 304 >/dev/null 2>&1 </dev/null & echo $! > "$PIDFILE"; sleep 100`, 2 * time.Second, contract.TimedOut},
	} {
		// The timeout leaves a loaded machine time to start the shell and
		// write the pid file before the run is ended.
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			pidFile := filepath.Join(t.TempDir(), "escaped.pid")
			b := shell(tc.script).env("PIDFILE", pidFile)
			if tc.timeout > 0 {
				b.timeout(tc.timeout)
			}
			res := f.run(b.build())
			if res.Status != tc.want {
				t.Errorf("status %s (%s), want %s", res.Status, res.Error, tc.want)
			}
			// The shell ignores SIGTERM: the reason says why the run
			// lasted longer than its timeout.
			if tc.want == contract.TimedOut && !strings.Contains(res.Error, "SIGTERM and, still running 300ms later, SIGKILL") {
				t.Errorf("reason %q does not say the grace period ran out", res.Error)
			}
			pid := readPID(t, pidFile)
			if !waitGone(pid) {
				syscall.Kill(pid, syscall.SIGKILL)
				t.Fatalf("the setsid'd process %d outlived its run", pid)
			}
		})
	}
}
