// Package gitpeer is a test helper shared by end-to-end tests: a real Git
// server on loopback (git's smart HTTP behind fluxcd's gittestserver) with
// one bare repository, lab.git, and a peer clone driven by the git CLI, as a
// colleague pushing commits would. It is not used by expsync itself.
package gitpeer

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fluxcd/pkg/gittestserver"
)

// Lab is the server, its repository and the peer clone (Peer: on main).
type Lab struct {
	T    testing.TB
	Srv  *gittestserver.GitServer
	Peer string
	// remote is the peer's origin URL (with credentials when the server
	// asks for them).
	remote string
}

// Auth makes the server require HTTP basic auth.
type Auth struct{ Username, Password string }

// New starts the server (requiring auth when given) and an empty peer
// clone; both are removed when the test ends.
func New(t testing.TB, auth *Auth) *Lab {
	t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	if auth != nil {
		srv.Auth(auth.Username, auth.Password)
	}
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.StopHTTP(); os.RemoveAll(srv.Root()) })
	l := &Lab{T: t, Srv: srv, Peer: t.TempDir(), remote: srv.HTTPAddress() + "/lab.git"}
	if auth != nil {
		l.remote = srv.HTTPAddressWithCredentials() + "/lab.git"
	}
	l.Git(srv.Root(), "init", "-q", "--bare", "-b", "main", "lab.git")
	l.Git(l.Peer, "init", "-q", "-b", "main")
	l.Git(l.Peer, "remote", "add", "origin", l.remote)
	return l
}

// URL is the repository's URL without credentials.
func (l *Lab) URL() string { return l.Srv.HTTPAddress() + "/lab.git" }

// Git runs git in dir and fails the test on error.
func (l *Lab) Git(dir string, args ...string) string {
	l.T.Helper()
	out, err := Git(dir, args...)
	if err != nil {
		l.T.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// Git runs git in dir with a fixed identity and no system or user
// configuration; it returns the trimmed stdout, or an error with stderr.
func Git(dir string, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0", "HOME="+os.TempDir(),
		"GIT_AUTHOR_NAME=Peer", "GIT_AUTHOR_EMAIL=peer@example.org",
		"GIT_COMMITTER_NAME=Peer", "GIT_COMMITTER_EMAIL=peer@example.org")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &Error{Err: err, Stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

// Error is a failed git command with what it wrote on stderr.
type Error struct {
	Err    error
	Stderr string
}

func (e *Error) Error() string { return e.Err.Error() + ": " + e.Stderr }

// Delete as a file's content in Commit deletes the path.
const Delete = "\x00delete"

// Commit writes files in the peer (Delete removes one), commits and pushes
// to main; it returns the commit.
func (l *Lab) Commit(msg string, files map[string]string) string {
	l.T.Helper()
	for name, content := range files {
		full := filepath.Join(l.Peer, filepath.FromSlash(name))
		if content == Delete {
			os.RemoveAll(full)
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			l.T.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			l.T.Fatal(err)
		}
	}
	l.Git(l.Peer, "add", "-A")
	l.Git(l.Peer, "commit", "-q", "--allow-empty", "-m", msg)
	l.Git(l.Peer, "push", "-q", "origin", "HEAD:main")
	return l.Git(l.Peer, "rev-parse", "HEAD")
}

// Pull brings the peer up to date with the server's main.
func (l *Lab) Pull() {
	l.T.Helper()
	l.Git(l.Peer, "pull", "-q", "--ff-only", "origin", "main")
}

// Head is the server's main, as `git ls-remote` sees it.
func (l *Lab) Head() string {
	l.T.Helper()
	return strings.Fields(l.Git(l.Peer, "ls-remote", "origin", "refs/heads/main"))[0]
}

// Clone makes a fresh clone of the server's main.
func (l *Lab) Clone() string {
	l.T.Helper()
	dir := filepath.Join(l.T.TempDir(), "clone")
	l.Git(filepath.Dir(dir), "clone", "-q", l.remote, dir)
	return dir
}
