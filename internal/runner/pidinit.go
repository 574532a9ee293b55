package runner

import (
	"os"

	"github.com/expsync/expsync/internal/platform"
)

// A run's reaper (reaper.go) exists so that no process of the run outlives
// its command. When expsync itself is PID 1 of its PID namespace — `expsync
// exec` as a pod's run container, which does not share the pod's process
// namespace — it already is what the reaper would be: every orphan of the
// run is re-parented to it (the kernel does that for a namespace's init),
// so it can kill them itself when the command ends (killDescendants), and
// when it exits the kernel kills whatever is left in the namespace. The
// reaper would only add a second expsync process, whose own memory (its Go
// heap and stacks, its copy of the binary's mapped pages) is charged to the
// run's container under the user's memory limit: a 32Mi run was pushed
// against its limit by expsync's two processes before its command had done
// anything.
//
// pidNamespaceInit reports whether this process is PID 1 of its namespace
// and /proc shows that namespace (so /proc/1 is this process, and
// killDescendants kills only processes of this namespace).
var pidNamespaceInit = func() bool {
	if os.Getpid() != 1 {
		return false
	}
	self, err := platform.ProcSelf()
	return err == nil && self == 1
}
