package e2e_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/internal/gitpeer"
)

// gitRemote is a real Git server for the controller in its pod: git's own
// smart-HTTP server (`git http-backend`, as a CGI program) on the node's
// bridge address, the host's only address a pod reaches (a pod's 127.0.0.1
// is its own). A peer clone driven by the git CLI pushes to it as a
// researcher would.
type gitRemote struct {
	t    testing.TB
	url  string // http://<node IP>:<port>/lab.git
	peer string

	mu sync.Mutex
	// received are when pushes by other clients than the git CLI (the
	// controller's go-git) were answered: the moment results are on the
	// branch, without the delay of a reader polling it.
	received []time.Time
	// requests are every request the server answered, for timelines.
	requests []gitRequest
}

type gitRequest struct {
	began       time.Time
	took        time.Duration
	what, agent string
}

// requestsBetween lists the requests of the controller (not the git
// CLI's) that began in [from, to], relative to from.
func (r *gitRemote) requestsBetween(from, to time.Time) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, q := range r.requests {
		if q.began.Before(from) || q.began.After(to) || strings.HasPrefix(q.agent, "git/") {
			continue
		}
		out = append(out, fmt.Sprintf("+%6.2fs %6.2fs %s", q.began.Sub(from).Seconds(), q.took.Seconds(), q.what))
	}
	return out
}

// receiveLog records when the server answered a push by anything but the
// git CLI.
type receiveLog struct {
	next http.Handler
	r    *gitRemote
}

func (l receiveLog) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	began := time.Now()
	l.next.ServeHTTP(w, req)
	l.r.mu.Lock()
	l.r.requests = append(l.r.requests, gitRequest{began: began, took: time.Since(began), what: req.Method + " " + req.URL.Path + "?" + req.URL.RawQuery, agent: req.UserAgent()})
	l.r.mu.Unlock()
	if req.Method == http.MethodPost && strings.HasSuffix(req.URL.Path, "/git-receive-pack") && !strings.HasPrefix(req.UserAgent(), "git/") {
		l.r.mu.Lock()
		l.r.received = append(l.r.received, time.Now())
		l.r.mu.Unlock()
	}
}

// receivedAfter is when the server first answered a push of the
// controller after t (zero if none).
func (r *gitRemote) receivedAfter(t time.Time) time.Time {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, at := range r.received {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}

func (n *node) gitServer(t testing.TB) *gitRemote {
	t.Helper()
	git, err := exec.LookPath("git")
	if err != nil {
		t.Fatal("the Git server is git http-backend: ", err)
	}
	root := t.TempDir()
	must(t, root, "init", "-q", "--bare", "-b", "main", "lab.git")
	// Pushes over HTTP without an authenticated user are refused by default.
	must(t, filepath.Join(root, "lab.git"), "config", "http.receivepack", "true")
	ln, err := net.Listen("tcp", net.JoinHostPort(n.nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	r := &gitRemote{t: t, url: "http://" + ln.Addr().String() + "/lab.git", peer: t.TempDir()}
	srv := &http.Server{Handler: receiveLog{next: &cgi.Handler{
		Path: git, Args: []string{"http-backend"}, Dir: root,
		Env: []string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1", "GIT_CONFIG_NOSYSTEM=1", "HOME=" + root},
	}, r: r}, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	must(t, r.peer, "init", "-q", "-b", "main")
	must(t, r.peer, "remote", "add", "origin", r.url)
	return r
}

func must(t testing.TB, dir string, args ...string) string {
	t.Helper()
	out, err := gitpeer.Git(dir, args...)
	if err != nil {
		t.Fatalf("git %s: %v", strings.Join(args, " "), err)
	}
	return out
}

// pushTree replaces the peer's files by the folder src (results/, which the
// controller committed, kept), commits and pushes; it returns the commit.
func (r *gitRemote) pushTree(msg, src string) string {
	r.t.Helper()
	r.commitTree(msg, src)
	r.pushHead()
	return must(r.t, r.peer, "rev-parse", "HEAD")
}

// pushHead pushes the peer's HEAD to the server's main.
func (r *gitRemote) pushHead() {
	r.t.Helper()
	must(r.t, r.peer, "push", "-q", "origin", "HEAD:main")
}

// commitTree commits the folder src in the peer (see pushTree), unpushed.
func (r *gitRemote) commitTree(msg, src string) {
	r.t.Helper()
	r.pull()
	entries, err := os.ReadDir(r.peer)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" && e.Name() != "results" {
			if err := os.RemoveAll(filepath.Join(r.peer, e.Name())); err != nil {
				r.t.Fatal(err)
			}
		}
	}
	if err := os.CopyFS(r.peer, os.DirFS(src)); err != nil {
		r.t.Fatal(err)
	}
	must(r.t, r.peer, "add", "-A")
	must(r.t, r.peer, "commit", "-q", "--allow-empty", "-m", msg)
}

// pull brings the peer up to the server's main (nothing when it is empty).
func (r *gitRemote) pull() {
	r.t.Helper()
	if r.head() == "" {
		return
	}
	must(r.t, r.peer, "pull", "-q", "--ff-only", "origin", "main")
}

// head is the server's main ("" before the first push).
func (r *gitRemote) head() string {
	r.t.Helper()
	f := strings.Fields(must(r.t, r.peer, "ls-remote", "origin", "refs/heads/main"))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

// clone makes a fresh clone of the server's main.
func (r *gitRemote) clone() string {
	r.t.Helper()
	dir := filepath.Join(r.t.TempDir(), "clone")
	must(r.t, filepath.Dir(dir), "clone", "-q", r.url, dir)
	return dir
}
