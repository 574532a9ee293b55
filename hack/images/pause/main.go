// Command pause is the pod sandbox's process: it holds the pod's namespaces
// until the runtime stops it with SIGTERM or SIGINT, and reaps children
// re-parented to it (a pod sharing its process namespace). The real-node
// tier builds it instead of pulling registry.k8s.io/pause: there is no
// registry to pull from.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for sig := range sigs {
		if sig != syscall.SIGCHLD {
			os.Exit(0)
		}
		for {
			var status syscall.WaitStatus
			pid, err := syscall.Wait4(-1, &status, syscall.WNOHANG, nil)
			if pid <= 0 || err != nil {
				break
			}
		}
	}
}
