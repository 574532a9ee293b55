package standin

import "os"

// The stand-in kubelet runs each container of a pod in a sandbox: the test
// binary, started again in new mount and PID namespaces, builds the
// container's file system from the pod's volume mounts — bind mounts of
// host folders, read-only where the pod says so, a sub-path where it names
// one — over a read-only root holding only the image, then drops to the
// pod's user and executes the container's command. What a pod can touch is
// then exactly what its spec mounts, as on a real node: a command writing
// outside its store prefix meets a read-only or absent path, not the
// host's folder next door.

// sandboxEnv carries a sandboxSpec (JSON) to the re-executed test binary.
const sandboxEnv = "EXPSYNC_STANDIN_SANDBOX"

// RunSandbox must be called first in the TestMain of every test binary that
// starts a Kubelet: in the re-executed binary it becomes the container and
// never returns; otherwise it returns at once.
func RunSandbox() {
	if spec, ok := os.LookupEnv(sandboxEnv); ok {
		sandboxMain(spec)
	}
}

// sandboxSpec is one container to run.
type sandboxSpec struct {
	// Root is an empty host folder the container's root is built on.
	Root string
	// Image are host paths bound read-only into the root at the same
	// path (the run image: the host's /usr, /bin, ...), or at Target.
	Image []bindMount
	// Mounts are the pod's volume mounts.
	Mounts []bindMount
	// Files are single files bound into /dev (the termination message).
	Files      []bindMount
	Argv, Env  []string
	WorkingDir string
	UID, GID   int
}

type bindMount struct {
	Source, Target string
	ReadOnly       bool
}
