package standin

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// sandboxCommand returns the command that runs spec in a sandbox.
func sandboxCommand(spec sandboxSpec) (*exec.Cmd, error) {
	data, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	self, err := os.Executable()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(self, "-test.run=^$")
	cmd.Env = []string{sandboxEnv + "=" + string(data)}
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Cloneflags: syscall.CLONE_NEWNS | syscall.CLONE_NEWPID,
		Setpgid:    true,
	}
	return cmd, nil
}

// sandboxMain is the re-executed test binary: it never returns.
func sandboxMain(specJSON string) {
	var spec sandboxSpec
	if err := json.Unmarshal([]byte(specJSON), &spec); err != nil {
		sandboxFail("spec: %v", err)
	}
	if err := buildRoot(spec); err != nil {
		sandboxFail("%v", err)
	}
	if err := syscall.Chroot(spec.Root); err != nil {
		sandboxFail("chroot: %v", err)
	}
	dir := spec.WorkingDir
	if dir == "" {
		dir = "/"
	}
	if err := os.Chdir(dir); err != nil {
		sandboxFail("working folder %s: %v", dir, err)
	}
	if spec.UID != 0 {
		if err := syscall.Setgroups([]int{spec.GID}); err != nil {
			sandboxFail("setgroups: %v", err)
		}
		if err := syscall.Setgid(spec.GID); err != nil {
			sandboxFail("setgid: %v", err)
		}
		if err := syscall.Setuid(spec.UID); err != nil {
			sandboxFail("setuid: %v", err)
		}
	}
	// allowPrivilegeEscalation: false.
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		sandboxFail("no_new_privs: %v", err)
	}
	argv0 := spec.Argv[0]
	if !strings.Contains(argv0, "/") {
		for _, env := range spec.Env {
			if path, ok := strings.CutPrefix(env, "PATH="); ok {
				for _, d := range filepath.SplitList(path) {
					if fi, err := os.Stat(filepath.Join(d, argv0)); err == nil && fi.Mode()&0o111 != 0 {
						argv0 = filepath.Join(d, argv0)
						break
					}
				}
			}
		}
	}
	err := syscall.Exec(argv0, spec.Argv, spec.Env)
	// As a container runtime reports a command it cannot start.
	fmt.Fprintf(os.Stderr, "exec %s: %v\n", spec.Argv[0], err)
	os.Exit(128)
}

func sandboxFail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "sandbox: "+format+"\n", args...)
	os.Exit(127)
}

// buildRoot mounts the container's file system on spec.Root, in this
// process's own mount namespace.
func buildRoot(spec sandboxSpec) error {
	// Nothing mounted here leaks to the host.
	if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
		return fmt.Errorf("make mounts private: %w", err)
	}
	root := spec.Root
	if err := unix.Mount("tmpfs", root, "tmpfs", 0, "mode=0755"); err != nil {
		return fmt.Errorf("root tmpfs: %w", err)
	}
	for _, m := range spec.Image {
		if m.Target == "" {
			m.Target = m.Source
		}
		m.ReadOnly = true
		if err := bind(root, m); err != nil {
			return err
		}
	}
	for _, m := range spec.Mounts {
		if err := bind(root, m); err != nil {
			return err
		}
	}
	// /dev: a few devices and the termination message files.
	dev := filepath.Join(root, "dev")
	if err := os.MkdirAll(dev, 0o755); err != nil {
		return err
	}
	if err := unix.Mount("tmpfs", dev, "tmpfs", unix.MS_NOSUID, "mode=0755"); err != nil {
		return fmt.Errorf("/dev: %w", err)
	}
	for _, d := range []string{"null", "zero", "random", "urandom"} {
		if err := bind(root, bindMount{Source: "/dev/" + d, Target: "/dev/" + d}); err != nil {
			return err
		}
	}
	for _, f := range spec.Files {
		if err := bind(root, f); err != nil {
			return err
		}
	}
	proc := filepath.Join(root, "proc")
	if err := os.MkdirAll(proc, 0o555); err != nil {
		return err
	}
	// This process is PID 1 of a new PID namespace: /proc shows the
	// container's processes only.
	if err := unix.Mount("proc", proc, "proc", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
		return fmt.Errorf("/proc: %w", err)
	}
	// readOnlyRootFilesystem: true.
	if err := unix.Mount("", root, "", unix.MS_REMOUNT|unix.MS_RDONLY, ""); err != nil {
		return fmt.Errorf("read-only root: %w", err)
	}
	return nil
}

// bind mounts m.Source at m.Target inside root, creating the mount point.
func bind(root string, m bindMount) error {
	target := filepath.Join(root, m.Target)
	fi, err := os.Stat(m.Source)
	if err != nil {
		return fmt.Errorf("mount %s: %w", m.Target, err)
	}
	if fi.IsDir() {
		err = os.MkdirAll(target, 0o755)
	} else {
		if err = os.MkdirAll(filepath.Dir(target), 0o755); err == nil {
			var f *os.File
			if f, err = os.OpenFile(target, os.O_CREATE|os.O_WRONLY, 0o644); err == nil {
				f.Close()
			}
		}
	}
	if err != nil {
		return fmt.Errorf("mount point %s: %w", m.Target, err)
	}
	if err := unix.Mount(m.Source, target, "", unix.MS_BIND|unix.MS_REC, ""); err != nil {
		return fmt.Errorf("bind %s at %s: %w", m.Source, m.Target, err)
	}
	if m.ReadOnly {
		if err := unix.Mount("", target, "", unix.MS_BIND|unix.MS_REMOUNT|unix.MS_RDONLY|unix.MS_REC, ""); err != nil {
			return fmt.Errorf("read-only %s: %w", m.Target, err)
		}
	}
	return nil
}
