package main

import (
	"bytes"
	"debug/elf"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
)

// inputs are what the recipes are made from: Debian packages extracted
// into one folder (build.sh: apt-get download + dpkg-deb -x) and two static
// Go binaries.
type inputs struct {
	// Debs is the folder the packages were extracted into, as a root.
	Debs string
	// Packages maps a Debian package name to its version (labels).
	Packages map[string]string
	Expsync  string // a static expsync binary (CGO_ENABLED=0)
	Pause    string // the static pause binary
	// Kueue is Kueue's static controller (hack/cluster/build-kueue.sh),
	// "" for no kueue image; KueueVersion its version (the tag).
	Kueue, KueueVersion string
}

const repoPrefix = "expsync.local/"

// tagSafe turns a Debian version into a valid image tag ("1:1.35.0-4+b1" →
// "1.35.0-4-b1"; the epoch is dropped, other characters become '-').
func tagSafe(v string) string {
	if i := strings.IndexByte(v, ':'); i >= 0 {
		v = v[i+1:]
	}
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' {
			return r
		}
		return '-'
	}, v)
}

func (in inputs) versionLabels(pkgs ...string) (map[string]string, error) {
	labels := map[string]string{}
	for _, p := range pkgs {
		v, ok := in.Packages[p]
		if !ok {
			return nil, fmt.Errorf("package %s was not extracted (build.sh lists it)", p)
		}
		labels["dev.expsync.debian."+p] = v
	}
	return labels, nil
}

// pauseImage is the pod sandbox: a static binary that waits for SIGTERM.
func pauseImage(in inputs) (imageSpec, *rootFS, error) {
	root := newRootFS()
	if err := root.Copy("pause", in.Pause); err != nil {
		return imageSpec{}, nil, err
	}
	return imageSpec{
		Repository: repoPrefix + "pause", Tag: "1",
		Entrypoint: []string{"/pause"},
		User:       "65535:65535",
		CreatedBy:  "hack/images/pause (static Go)",
	}, root, nil
}

// kueueImage holds Kueue's controller at /manager, where its Helm chart
// starts it, as 65532 (the chart asks for runAsNonRoot and a read-only
// root): what Kueue's own distroless image holds.
func kueueImage(in inputs) (imageSpec, *rootFS, error) {
	root := newRootFS()
	if err := root.Copy("manager", in.Kueue); err != nil {
		return imageSpec{}, nil, err
	}
	return imageSpec{
		Repository: repoPrefix + "kueue", Tag: in.KueueVersion,
		Entrypoint: []string{"/manager"},
		User:       "65532:65532",
		CreatedBy:  "sigs.k8s.io/kueue/cmd/kueue " + in.KueueVersion + " (CGO_ENABLED=0)",
	}, root, nil
}

// passwd and group name the users a distroless image knows; the runner and
// the controller run as nonroot (65532).
const (
	passwd = "root:x:0:0:root:/root:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
	group  = "root:x:0:\nnonroot:x:65532:\nnobody:x:65534:\n"
)

// expsyncImage holds the static expsync at render.DefaultRunnerBinary: the
// runner's init container and the controller. It runs as 65532 with a
// read-only root: nothing in it needs to be written. The CA bundle is
// Debian's (ca-certificates), for URL inputs and Git over HTTPS.
func expsyncImage(in inputs) (imageSpec, *rootFS, error) {
	root := newRootFS()
	steps := []error{
		root.Copy("usr/local/bin/expsync", in.Expsync),
		root.File("etc/passwd", 0o644, []byte(passwd)),
		root.File("etc/group", 0o644, []byte(group)),
		root.Dir("home/nonroot", 0o755),
		root.Dir("tmp", 0o1777),
	}
	if err := errors.Join(steps...); err != nil {
		return imageSpec{}, nil, err
	}
	root.entries["home/nonroot"].uid, root.entries["home/nonroot"].gid = 65532, 65532
	bundle, err := caBundle(filepath.Join(in.Debs, "usr/share/ca-certificates"))
	if err != nil {
		return imageSpec{}, nil, err
	}
	if err := root.File("etc/ssl/certs/ca-certificates.crt", 0o644, bundle); err != nil {
		return imageSpec{}, nil, err
	}
	labels, err := in.versionLabels("ca-certificates")
	if err != nil {
		return imageSpec{}, nil, err
	}
	return imageSpec{
		Repository: repoPrefix + "expsync", Tag: "e2e",
		Entrypoint: []string{"/usr/local/bin/expsync"},
		User:       "65532:65532",
		Env:        []string{"PATH=/usr/local/bin", "HOME=/home/nonroot"},
		Labels:     labels,
		CreatedBy:  "bin/expsync (CGO_ENABLED=0) + Debian ca-certificates",
	}, root, nil
}

// caBundle concatenates the certificates ca-certificates ships, in name
// order, as update-ca-certificates would.
func caBundle(dir string) ([]byte, error) {
	var files []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".crt") {
			files = append(files, p)
		}
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("CA certificates: %w", err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("no certificates under %s (is ca-certificates extracted?)", dir)
	}
	sort.Strings(files)
	var b bytes.Buffer
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		b.Write(bytes.TrimRight(data, "\n"))
		b.WriteByte('\n')
	}
	return b.Bytes(), nil
}

// busyboxImage is what the shell examples run: Debian's busybox-static for
// the utilities (tr, wc, mkdir, cat, ...: every applet linked at the path
// busybox names for it), dash as sh and mawk as awk, with the libraries they
// link. Debian builds busybox-static's awk without its math functions
// ("Math support is not compiled in": no log, exp, sqrt), which the descent
// example needs, and its sh runs its own applets before any program on PATH
// — so busybox's sh would still pick its own awk.
func busyboxImage(in inputs) (imageSpec, *rootFS, error) {
	bin := filepath.Join(in.Debs, "bin/busybox")
	root := newRootFS()
	if err := root.Copy("bin/busybox", bin); err != nil {
		return imageSpec{}, nil, err
	}
	// The static binary runs on any Linux host: ask it for its applets.
	out, err := exec.Command(bin, "--list-full").Output()
	if err != nil {
		return imageSpec{}, nil, fmt.Errorf("%s --list-full: %w", bin, err)
	}
	replaced := map[string]bool{"busybox": true, "sh": true, "ash": true, "awk": true}
	for _, applet := range strings.Fields(string(out)) {
		if replaced[path.Base(applet)] {
			continue
		}
		if err := root.Symlink(applet, "/bin/busybox"); err != nil {
			return imageSpec{}, nil, err
		}
	}
	libs := newLibResolver(in.Debs, root)
	for _, prog := range []struct{ file, link, target string }{
		{"bin/dash", "bin/sh", "dash"},
		{"usr/bin/mawk", "usr/bin/awk", "mawk"},
	} {
		if err := root.Copy(prog.file, filepath.Join(in.Debs, prog.file)); err != nil {
			return imageSpec{}, nil, err
		}
		if err := libs.addNeeds(filepath.Join(in.Debs, prog.file)); err != nil {
			return imageSpec{}, nil, fmt.Errorf("%s: %w", prog.file, err)
		}
		if err := root.Symlink(prog.link, prog.target); err != nil {
			return imageSpec{}, nil, err
		}
	}
	labels, err := in.versionLabels("busybox-static", "dash", "mawk", "libc6")
	if err != nil {
		return imageSpec{}, nil, err
	}
	return imageSpec{
		Repository: repoPrefix + "busybox", Tag: tagSafe(in.Packages["busybox-static"]),
		Cmd:       []string{"sh"},
		Env:       []string{"PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"},
		Labels:    labels,
		CreatedBy: "Debian busybox-static, dash as sh, mawk as awk",
	}, root, nil
}

// pythonSkip are parts of the standard library no experiment runs: test
// suites, GUIs, the bundled pip. Keeping them out keeps the image small.
var pythonSkip = map[string]bool{
	"test": true, "idlelib": true, "tkinter": true, "turtledemo": true, "ensurepip": true,
	"lib2to3/tests": true, "distutils/tests": true, "unittest/test": true, "ctypes/test": true,
	"sqlite3/test": true, "__pycache__": true, "config-3.11-x86_64-linux-gnu": true,
}

// pythonImage is Debian's CPython 3.11 (python3.11-minimal with the standard
// library), its C library and the libraries it links, nothing else. Extension
// modules that need a library outside that set (ssl, sqlite3, ctypes,
// decimal, ...) are left out, so importing them fails clearly instead of
// failing to load a missing .so.
func pythonImage(in inputs) (imageSpec, *rootFS, error) {
	const ver = "3.11"
	root := newRootFS()
	libs := newLibResolver(in.Debs, root)
	bin := "usr/bin/python" + ver
	if err := root.Copy(bin, filepath.Join(in.Debs, bin)); err != nil {
		return imageSpec{}, nil, err
	}
	if err := root.Symlink("usr/bin/python3", "python"+ver); err != nil {
		return imageSpec{}, nil, err
	}
	if err := libs.addNeeds(filepath.Join(in.Debs, bin)); err != nil {
		return imageSpec{}, nil, fmt.Errorf("python%s: %w", ver, err)
	}
	stdlib := "usr/lib/python" + ver
	var dropped []string
	err := root.CopyTree(stdlib, filepath.Join(in.Debs, stdlib), func(rel string, d fs.DirEntry) bool {
		if pythonSkip[rel] || pythonSkip[d.Name()] {
			return true
		}
		if strings.HasPrefix(rel, "lib-dynload/") && strings.HasSuffix(rel, ".so") {
			if !libs.satisfied(filepath.Join(in.Debs, stdlib, rel)) {
				dropped = append(dropped, strings.SplitN(path.Base(rel), ".", 2)[0])
				return true
			}
		}
		return false
	})
	if err != nil {
		return imageSpec{}, nil, err
	}
	fmt.Fprintf(os.Stderr, "python image: extension modules left out (they need other libraries): %s\n", strings.Join(dropped, " "))
	labels, err := in.versionLabels("python3.11-minimal", "libpython3.11-minimal", "libpython3.11-stdlib", "libc6", "zlib1g", "libexpat1")
	if err != nil {
		return imageSpec{}, nil, err
	}
	return imageSpec{
		Repository: repoPrefix + "python", Tag: tagSafe(in.Packages["python3.11-minimal"]),
		Cmd:       []string{"python3"},
		Env:       []string{"PATH=/usr/local/bin:/usr/bin:/bin", "LANG=C.UTF-8"},
		Labels:    labels,
		CreatedBy: "Debian python3.11-minimal, libpython3.11-stdlib and the libraries they link",
	}, root, nil
}

// libResolver adds the shared libraries an ELF file needs (its DT_NEEDED
// closure and its interpreter) from the extracted packages to the image.
type libResolver struct {
	debs string
	root *rootFS
	// found maps a soname to whether it resolved (and was added).
	found map[string]bool
}

var libDirs = []string{"lib/x86_64-linux-gnu", "usr/lib/x86_64-linux-gnu", "lib64", "lib", "usr/lib"}

func newLibResolver(debs string, root *rootFS) *libResolver {
	return &libResolver{debs: debs, root: root, found: map[string]bool{}}
}

// addNeeds adds file's interpreter and needed libraries, recursively; a
// library that is not in the extracted packages is an error.
func (l *libResolver) addNeeds(file string) error {
	f, err := elf.Open(file)
	if err != nil {
		return err
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			data := make([]byte, p.Filesz)
			if _, err := p.ReadAt(data, 0); err != nil {
				return err
			}
			interp := strings.TrimRight(string(data), "\x00")
			if err := l.addPath(strings.TrimPrefix(interp, "/")); err != nil {
				return fmt.Errorf("interpreter %s: %w", interp, err)
			}
		}
	}
	needed, err := f.ImportedLibraries()
	if err != nil {
		return err
	}
	for _, soname := range needed {
		if ok, seen := l.found[soname]; seen {
			if !ok {
				return fmt.Errorf("%s not found in the extracted packages", soname)
			}
			continue
		}
		dir := l.locate(soname)
		l.found[soname] = dir != ""
		if dir == "" {
			return fmt.Errorf("%s not found in the extracted packages (add its package to build.sh)", soname)
		}
		if err := l.addPath(path.Join(dir, soname)); err != nil {
			return err
		}
	}
	return nil
}

// satisfied reports whether every library file needs is already in the
// image (an extension module is kept only then).
func (l *libResolver) satisfied(file string) bool {
	f, err := elf.Open(file)
	if err != nil {
		return false
	}
	defer f.Close()
	needed, err := f.ImportedLibraries()
	if err != nil {
		return false
	}
	for _, soname := range needed {
		if !l.found[soname] {
			return false
		}
	}
	return true
}

func (l *libResolver) locate(soname string) string {
	for _, d := range libDirs {
		if _, err := os.Lstat(filepath.Join(l.debs, d, soname)); err == nil {
			return d
		}
	}
	return ""
}

// addPath adds a library path, following symlinks (each link and its
// target are added), and then what the library itself needs.
func (l *libResolver) addPath(p string) error {
	for range 10 {
		src := filepath.Join(l.debs, p)
		fi, err := os.Lstat(src)
		if err != nil {
			return err
		}
		if err := l.root.Copy(p, src); err != nil {
			return err
		}
		if fi.Mode()&fs.ModeSymlink == 0 {
			return l.addNeeds(src)
		}
		target, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if path.IsAbs(target) {
			p = strings.TrimPrefix(target, "/")
		} else {
			p = path.Join(path.Dir(p), target)
		}
	}
	return fmt.Errorf("%s: too many symbolic links", p)
}
