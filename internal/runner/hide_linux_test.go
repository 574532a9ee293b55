package runner

import (
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRunsCannotReadExpsyncsEnvironment: after a run, this
// process is not dumpable, which on Linux keeps a run of the same user
// (without CAP_SYS_PTRACE) from reading its environment, expsync's
// credentials, through /proc/<ppid>/environ. Whether the probe is refused
// depends on the kernel and the capabilities the tests run with (this
// machine's sandbox lets root read it anyway), so only the flag is
// asserted; the probe's answer is logged.
func TestRunsCannotReadExpsyncsEnvironment(t *testing.T) {
	f := newFixture(t)
	probe := []string{"sh", "-c", `cat /proc/$PPID/environ >/dev/null 2>&1 && echo readable || echo refused`}
	if _, err := exec.LookPath("setpriv"); err == nil && hasCapSysPtrace(t) {
		// A run in a container usually lacks CAP_SYS_PTRACE ($PPID stays
		// this process: setpriv execs the shell).
		probe = append([]string{"setpriv", "--bounding-set", "-sys_ptrace"}, probe...)
	}
	res := f.run(newContract(probe...).build())
	if d, err := unix.PrctlRetInt(unix.PR_GET_DUMPABLE, 0, 0, 0, 0); err != nil || d != 0 {
		t.Fatalf("dumpable = %d (%v) after a run; want 0", d, err)
	}
	t.Logf("a run reading /proc/$PPID/environ: %s", strings.TrimSpace(res.LogTail))
}

func hasCapSysPtrace(t *testing.T) bool {
	status, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(status), "\n") {
		if hex, ok := strings.CutPrefix(line, "CapEff:"); ok {
			caps, err := strconv.ParseUint(strings.TrimSpace(hex), 16, 64)
			if err != nil {
				t.Fatal(err)
			}
			return caps&(1<<unix.CAP_SYS_PTRACE) != 0
		}
	}
	return false
}
