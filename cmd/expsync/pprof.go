//go:build pprof

package main

import (
	"net/http"
	_ "net/http/pprof" // profiles on EXPSYNC_PPROF_ADDR
	"os"
)

// Built with -tags pprof (the fleet benchmark's profiles), expsync serves
// Go's profiles on EXPSYNC_PPROF_ADDR (for example 127.0.0.1:6060). Not in
// released builds: the endpoint has no authentication.
func init() {
	if addr := os.Getenv("EXPSYNC_PPROF_ADDR"); addr != "" {
		go func() { _ = http.ListenAndServe(addr, nil) }()
	}
}
