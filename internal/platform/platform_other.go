//go:build darwin || freebsd || netbsd || openbsd || dragonfly

package platform

import (
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

const isLinux = false

// CloneFile is unsupported: the caller copies.
func CloneFile(dst, src *os.File) error { return ErrUnsupported }

// WriteUnnamed is unsupported: the caller writes a temp file and renames.
func WriteUnnamed(path, dir string, data []byte, perm os.FileMode) (done, unsupported bool, err error) {
	return false, true, nil
}

// TryLockByte is unsupported: POSIX record locks elsewhere belong to the
// process, not the description, so goroutines would not exclude each
// other; the caller locks a file of its own with flock instead.
func TryLockByte(f *os.File, offset int64) (locked bool, err error) {
	return false, ErrUnsupported
}

// DieWithParent does nothing: no death signal here; the process group is
// still ended when the run ends.
func DieWithParent(attr *syscall.SysProcAttr, sig syscall.Signal) {}

// BecomeSubreaper is unsupported.
func BecomeSubreaper() error { return ErrUnsupported }

// HideFromPeers does nothing beyond the user's own protections.
func HideFromPeers() error { return ErrUnsupported }

// IsCgroup2 is false: no cgroups.
func IsCgroup2(m string) bool { return false }

// StartInCgroup does nothing: IsCgroup2 is false here, so no caller has a
// cgroup to start in.
func StartInCgroup(attr *syscall.SysProcAttr, fd int) {}

// MemAvailable returns the machine's physical memory (hw.memsize on macOS,
// hw.physmem on the BSDs): what the local executor may hand to runs when
// no limit is given.
func MemAvailable() (int64, error) {
	for _, name := range []string{"hw.memsize", "hw.physmem"} {
		if n, err := unix.SysctlUint64(name); err == nil && n > 0 {
			return int64(n), nil
		}
	}
	return 0, ErrUnsupported
}
