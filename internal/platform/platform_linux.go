package platform

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

const isLinux = true

// CloneFile makes dst a copy-on-write clone of src (FICLONE): no data is
// copied where the file system can (btrfs, XFS, overlayfs on them).
func CloneFile(dst, src *os.File) error {
	return unix.IoctlFileClone(int(dst.Fd()), int(src.Fd()))
}

// WriteUnnamed writes data to an unnamed file in path's folder (O_TMPFILE)
// and links it in under path once complete: one file creation, no temp
// name to clean up after a crash. done is false when the caller must write
// another way: unsupported is true when this file system or kernel never
// can (no O_TMPFILE, no /proc), false when path exists (replacing a file
// takes a rename). A missing folder is created.
func WriteUnnamed(path, dir string, data []byte, perm os.FileMode) (done, unsupported bool, err error) {
	fd, err := unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
	if errors.Is(err, unix.ENOENT) {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return true, false, err
		}
		fd, err = unix.Open(dir, unix.O_TMPFILE|unix.O_WRONLY|unix.O_CLOEXEC, uint32(perm.Perm()))
	}
	if err != nil {
		return false, errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.EISDIR) || errors.Is(err, unix.EINVAL), nil
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	if _, err := f.Write(data); err != nil {
		return true, false, err
	}
	err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(fd), unix.AT_FDCWD, path, unix.AT_SYMLINK_FOLLOW)
	switch {
	case err == nil:
		return true, false, nil
	case errors.Is(err, unix.EEXIST):
		return false, false, nil
	case errors.Is(err, unix.ENOENT) || errors.Is(err, unix.EPERM) || errors.Is(err, unix.EACCES):
		return false, true, nil // no /proc
	}
	return true, false, err
}

// TryLockByte takes an exclusive open file description lock (F_OFD_SETLK)
// on one byte of f at offset: exclusive between processes and between
// descriptions of one process, released when f is closed or its holder
// dies. locked is false when another holds it.
func TryLockByte(f *os.File, offset int64) (locked bool, err error) {
	lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0, Start: offset, Len: 1}
	err = unix.FcntlFlock(f.Fd(), unix.F_OFD_SETLK, &lk)
	if err == nil {
		return true, nil
	}
	if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EACCES) || errors.Is(err, unix.EINTR) {
		return false, nil
	}
	return false, err
}

// DieWithParent asks the kernel to send sig to the child started with
// attr when the thread that started it dies (Pdeathsig).
func DieWithParent(attr *syscall.SysProcAttr, sig syscall.Signal) {
	attr.Pdeathsig = sig
}

// BecomeSubreaper makes this process the reaper of its orphaned
// descendants (PR_SET_CHILD_SUBREAPER), so a run's processes that leave
// its process group are still found and ended.
func BecomeSubreaper() error {
	return unix.Prctl(unix.PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
}

// HideFromPeers makes this process not dumpable (PR_SET_DUMPABLE 0): other
// processes of the same user cannot read its memory or /proc/<pid>/environ,
// where secrets live.
func HideFromPeers() error {
	return unix.Prctl(unix.PR_SET_DUMPABLE, 0, 0, 0, 0)
}

// IsCgroup2 reports whether the folder m is a cgroup v2 mount.
func IsCgroup2(m string) bool {
	var st unix.Statfs_t
	return unix.Statfs(m, &st) == nil && st.Type == unix.CGROUP2_SUPER_MAGIC
}

// StartInCgroup starts the child of attr in the cgroup v2 folder open as
// fd (clone3 CLONE_INTO_CGROUP), so every process it makes is in it.
func StartInCgroup(attr *syscall.SysProcAttr, fd int) {
	attr.UseCgroupFD, attr.CgroupFD = true, fd
}

// MemAvailable returns the machine's available memory from /proc/meminfo
// (MemTotal on kernels without MemAvailable).
func MemAvailable() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	var total int64
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		kib, err := strconv.ParseInt(fields[1], 10, 64)
		if err != nil {
			continue
		}
		switch fields[0] {
		case "MemAvailable:":
			return kib * 1024, nil
		case "MemTotal:":
			total = kib * 1024
		}
	}
	if total > 0 {
		return total, nil
	}
	return 0, fmt.Errorf("/proc/meminfo: no MemAvailable or MemTotal")
}
