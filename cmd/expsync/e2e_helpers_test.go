package main

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"

	"github.com/expsync/expsync/attest"
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
			binErr = &labGitErr{err, string(out)}
		}
	})
	if binErr != nil {
		t.Fatalf("build expsync: %v", binErr)
	}
	return binPath
}

// lab is a real Git server on loopback with one repository, lab.git, and a
// peer clone driven by the git CLI.
type lab struct {
	t    testing.TB
	srv  *gittestserver.GitServer
	peer string
}

func newLab(t testing.TB) *lab {
	t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.StopHTTP(); os.RemoveAll(srv.Root()) })
	l := &lab{t: t, srv: srv, peer: t.TempDir()}
	l.git(srv.Root(), "init", "-q", "--bare", "-b", "main", "lab.git")
	l.git(l.peer, "init", "-q", "-b", "main")
	l.git(l.peer, "remote", "add", "origin", l.url())
	return l
}

func (l *lab) url() string { return l.srv.HTTPAddress() + "/lab.git" }

func (l *lab) git(dir string, args ...string) string {
	l.t.Helper()
	out, err := labGit(dir, args...)
	if err != nil {
		l.t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func labGit(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "HOME="+os.TempDir(),
		"GIT_AUTHOR_NAME=Peer", "GIT_AUTHOR_EMAIL=peer@example.org",
		"GIT_COMMITTER_NAME=Peer", "GIT_COMMITTER_EMAIL=peer@example.org")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &labGitErr{err, stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

type labGitErr struct {
	err    error
	output string
}

func (e *labGitErr) Error() string { return e.err.Error() + ": " + e.output }

// commit writes files in the peer, commits and pushes to main.
func (l *lab) commit(msg string, files map[string]string) string {
	l.t.Helper()
	for name, content := range files {
		full := filepath.Join(l.peer, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			l.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			l.t.Fatal(err)
		}
	}
	l.git(l.peer, "add", "-A")
	l.git(l.peer, "commit", "-q", "-m", msg)
	l.git(l.peer, "push", "-q", "origin", "HEAD:main")
	return l.git(l.peer, "rev-parse", "HEAD")
}

// commitUnsigned pulls, then commits and pushes like commit.
func (l *lab) commitUnsigned(msg string, files map[string]string) string {
	l.t.Helper()
	l.git(l.peer, "pull", "-q", "--ff-only", "origin", "main")
	return l.commit(msg, files)
}

func (l *lab) head() string {
	l.t.Helper()
	return strings.Fields(l.git(l.peer, "ls-remote", "origin", "refs/heads/main"))[0]
}

func (l *lab) clone() string {
	l.t.Helper()
	dir := filepath.Join(l.t.TempDir(), "clone")
	l.git(filepath.Dir(dir), "clone", "-q", l.url(), dir)
	return dir
}

// labKeyPair writes a signing key without a passphrase.
func labKeyPair(t testing.TB) (key, pub string) {
	t.Helper()
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		t.Fatal(err)
	}
	kp, err := attest.EncodeKeyPair(priv, nil)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	key, pub = filepath.Join(dir, "k.key"), filepath.Join(dir, "k.pub")
	if err := os.WriteFile(key, kp.Private, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(pub, kp.Public, 0o644); err != nil {
		t.Fatal(err)
	}
	return key, pub
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
