// Package platform holds what expsync does differently on Linux: unnamed
// files (O_TMPFILE), copy-on-write clones (FICLONE), open file description
// locks (F_OFD_SETLK), a child's death signal (Pdeathsig), child subreapers,
// cgroup v2 and /proc (proc_linux.go: process status, children, environment,
// peak memory). Linux has the real thing (platform_linux.go); other
// systems get a portable fallback or ErrUnsupported, which the callers
// turn into a slower path or a clear message (platform_other.go).
//
// What runs where (README "Platforms"): everything on Linux; on macOS and
// the BSDs expsync builds, and run/serve/verify work with weaker process
// containment (no cgroup, no subreaper, no death signal: a run's processes
// that leave its process group can outlive it) and without O_TMPFILE and
// reflinks; the Kubernetes side runs in Linux containers anyway.
package platform

import "errors"

// ErrUnsupported is returned where this system lacks the feature.
var ErrUnsupported = errors.ErrUnsupported

// Linux reports whether the real thing is here (tests use it to know what
// to expect).
const Linux = isLinux
