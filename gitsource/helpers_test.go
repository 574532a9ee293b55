package gitsource

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/gittestserver"
)

const (
	testUser     = "alice"
	testPassword = "s3cr3t-Pa55word"
)

// gitEnv isolates the git CLI from the machine's configuration.
func gitEnv(home string) []string {
	return append(os.Environ(),
		"HOME="+home, "GIT_CONFIG_NOSYSTEM=1", "GIT_TERMINAL_PROMPT=0",
		"GIT_AUTHOR_NAME=Peer", "GIT_AUTHOR_EMAIL=peer@example.org",
		"GIT_COMMITTER_NAME=Peer", "GIT_COMMITTER_EMAIL=peer@example.org",
		"GIT_SSH_COMMAND=ssh -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null",
	)
}

// git runs the git CLI in dir and returns its trimmed stdout.
func runGit(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitErr(dir, nil, args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

func gitErr(dir string, stdin []byte, args ...string) (string, error) {
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = gitEnv(os.TempDir())
	if stdin != nil {
		cmd.Stdin = bytes.NewReader(stdin)
	}
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), &gitError{err: err, stderr: stderr.String()}
	}
	return strings.TrimSpace(stdout.String()), nil
}

type gitError struct {
	err    error
	stderr string
}

func (e *gitError) Error() string { return e.err.Error() + ": " + e.stderr }

// server is a real Git server (git's smart HTTP behind gittestserver) on
// loopback, with basic authentication.
type server struct {
	t   testing.TB
	srv *gittestserver.GitServer
}

func newServer(t testing.TB) *server {
	t.Helper()
	srv, err := gittestserver.NewTempGitServer()
	if err != nil {
		t.Fatal(err)
	}
	srv.Auth(testUser, testPassword)
	if err := srv.StartHTTP(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.StopHTTP(); os.RemoveAll(srv.Root()) })
	return &server{t: t, srv: srv}
}

// newRepo creates an empty bare repository served at <name>.git.
func (s *server) newRepo(name string) {
	s.t.Helper()
	runGit(s.t, s.srv.Root(), "init", "-q", "--bare", "-b", "main", name+".git")
}

// url is the repository URL without credentials (what expsync gets).
func (s *server) url(name string) string { return s.srv.HTTPAddress() + "/" + name + ".git" }

// peerURL carries credentials, for the git CLI peer.
func (s *server) peerURL(name string) string {
	return s.srv.HTTPAddressWithCredentials() + "/" + name + ".git"
}

func (s *server) barePath(name string) string { return filepath.Join(s.srv.Root(), name+".git") }

// peer is a working clone driven by the git CLI.
type peer struct {
	t   testing.TB
	dir string
}

func newPeer(t testing.TB, remote string) *peer {
	t.Helper()
	dir := t.TempDir()
	runGit(t, dir, "init", "-q", "-b", "main")
	runGit(t, dir, "remote", "add", "origin", remote)
	runGit(t, dir, "config", "commit.gpgsign", "false")
	return &peer{t: t, dir: dir}
}

// commit writes files (path -> content) and commits them.
func (p *peer) commit(msg string, files map[string]string) string {
	p.t.Helper()
	for name, content := range files {
		full := filepath.Join(p.dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			p.t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			p.t.Fatal(err)
		}
	}
	runGit(p.t, p.dir, "add", "-A")
	runGit(p.t, p.dir, "commit", "-q", "--allow-empty", "-m", msg)
	return runGit(p.t, p.dir, "rev-parse", "HEAD")
}

func (p *peer) push(args ...string) {
	p.t.Helper()
	runGit(p.t, p.dir, append([]string{"push", "-q", "origin"}, args...)...)
}

// checkout is a fresh clone used to assert what the server holds.
type checkout struct {
	dir string
}

func reclone(t testing.TB, remote, branch string) *checkout {
	t.Helper()
	dir := t.TempDir()
	runGit(t, dir, "clone", "-q", "--branch", branch, remote, "c")
	return &checkout{dir: filepath.Join(dir, "c")}
}

func (c *checkout) head(t testing.TB) string { return runGit(t, c.dir, "rev-parse", "HEAD") }

// files lists every file of HEAD with its content.
func (c *checkout) files(t testing.TB) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, name := range strings.Split(runGit(t, c.dir, "ls-files"), "\n") {
		if name == "" {
			continue
		}
		data, err := os.ReadFile(filepath.Join(c.dir, filepath.FromSlash(name)))
		if err != nil {
			t.Fatal(err)
		}
		out[name] = string(data)
	}
	return out
}

// log returns the commit IDs of HEAD's history, newest first.
func (c *checkout) log(t testing.TB) []string {
	return strings.Split(runGit(t, c.dir, "log", "--format=%H"), "\n")
}

func basicAuth() *Auth { return &Auth{Username: testUser, Password: testPassword} }

// newSource builds a Source for the HTTP server with basic auth.
func newSource(t testing.TB, s *server, name string, refs ...RefPolicy) *Source {
	t.Helper()
	if len(refs) == 0 {
		refs = []RefPolicy{{Pattern: "main", Trusted: true}}
	}
	src, err := New(Repository{URL: s.url(name), Auth: basicAuth(), Refs: refs,
		URLPolicy: URLPolicy{AllowHTTP: true}}, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return src
}

func testCtx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

// readAll reads every regular file of a snapshot.
func readAll(t testing.TB, sn *Snapshot) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := sn.Walk("", func(p string, e treeEntry) error {
		if e.IsDir() {
			return nil
		}
		data, err := sn.ReadFile(p, 0)
		if err != nil {
			return err
		}
		out[p] = string(data)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
