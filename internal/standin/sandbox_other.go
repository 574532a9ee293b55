//go:build !linux

package standin

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
)

// errNoSandbox: the sandbox is built from Linux mount and PID namespaces;
// elsewhere the stand-in kubelet compiles (so the test packages using it
// vet on every platform) but cannot start a container.
var errNoSandbox = errors.New("the stand-in kubelet runs containers in Linux mount and PID namespaces: run these tests on Linux")

func sandboxCommand(sandboxSpec) (*exec.Cmd, error) { return nil, errNoSandbox }

func sandboxMain(string) {
	fmt.Fprintln(os.Stderr, "sandbox:", errNoSandbox)
	os.Exit(127)
}
