package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"

	"github.com/expsync/expsync/internal/gitpeer"
	"github.com/expsync/expsync/internal/testkeys"
)

// expsyncBinary builds the expsync binary once per test process.
var (
	binOnce sync.Once
	binPath string
	binErr  error
)

func expsyncBinary(t testing.TB) string {
	t.Helper()
	binOnce.Do(func() {
		dir, err := os.MkdirTemp("", "expsync-bin-")
		if err != nil {
			binErr = err
			return
		}
		binPath = filepath.Join(dir, "expsync")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binErr = fmt.Errorf("%w: %s", err, out)
		}
	})
	if binErr != nil {
		t.Fatalf("build expsync: %v", binErr)
	}
	return binPath
}

// lab is a real Git server on loopback with one repository, lab.git, and a
// peer clone driven by the git CLI (no auth).
type lab struct{ *gitpeer.Lab }

func newLab(t testing.TB) *lab { return &lab{gitpeer.New(t, nil)} }

// commitUnsigned pulls, then commits and pushes like commit.
func (l *lab) commitUnsigned(msg string, files map[string]string) string {
	l.T.Helper()
	l.Pull()
	return l.Commit(msg, files)
}

// labKeyPair writes a signing key without a passphrase.
func labKeyPair(t testing.TB) (key, pub string) {
	return testkeys.Write(t, t.TempDir(), "k")
}

// labCLI runs the expsync CLI in-process and returns its exit code, stdout
// and stderr.
func labCLI(t testing.TB, args ...string) (int, string, string) {
	t.Helper()
	root := newRootCmd()
	var stdout, stderr bytes.Buffer
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	root.SetArgs(args)
	err := root.Execute()
	code := 0
	if err != nil {
		code = 2
		var ee *exitError
		if labAsExit(err, &ee) {
			code = ee.code
		}
		stderr.WriteString(err.Error())
	}
	return code, stdout.String(), stderr.String()
}

func labAsExit(err error, target **exitError) bool {
	for err != nil {
		if e, ok := err.(*exitError); ok {
			*target = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}
