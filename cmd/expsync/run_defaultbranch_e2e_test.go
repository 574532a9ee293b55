package main

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/gitpeer"
)

// `expsync run REPO` without --branch asks the server for its default
// branch through gitsource: with the run's credentials, URL policy and
// limits. These tests drive runOptions.Exec against real servers on
// loopback (gittestserver's smart HTTP, a bare repository read by path, and
// listeners that accept and never answer).

// runWithoutBranch is `expsync run REPO` with a fresh key, store and state,
// --allow-http, and no --branch.
func runWithoutBranch(t *testing.T, repo string) *runOptions {
	t.Helper()
	key, _ := labKeyPair(t)
	t.Setenv("EXPSYNC_PASSWORD", "")
	return &runOptions{Repo: repo, Key: key, Store: t.TempDir(), State: t.TempDir(), BatchInterval: time.Second,
		Progress: "none", AllowHTTP: true}
}

// runResult is what one Exec returned: its exit code (0 for nil), error and
// output.
type runResult struct {
	code           int
	err            error
	stdout, stderr string
	took           time.Duration
}

// all is everything a user sees, for "no secret anywhere" checks.
func (r runResult) all() string {
	msg := ""
	if r.err != nil {
		msg = r.err.Error()
	}
	return r.stdout + "\n" + r.stderr + "\n" + msg
}

func (o *runOptions) execForTest(t *testing.T) runResult {
	t.Helper()
	var stdout, stderr bytes.Buffer
	t0 := time.Now()
	err := o.Exec(context.Background(), &stdout, &stderr)
	r := runResult{err: err, stdout: stdout.String(), stderr: stderr.String(), took: time.Since(t0)}
	if err != nil {
		r.code = 2
		var ee *exitError
		if labAsExit(err, &ee) {
			r.code = ee.code
		}
	}
	return r
}

// setGitCredentials puts credentials where `expsync run` reads them.
func setGitCredentials(t *testing.T, user, password string) {
	t.Setenv("EXPSYNC_GIT_USERNAME", user)
	t.Setenv("EXPSYNC_GIT_PASSWORD", password)
}

// serverHead is the commit of branch on the lab's server ("" when absent).
func serverHead(l *lab, branch string) string {
	l.T.Helper()
	f := strings.Fields(l.Git(l.Peer, "ls-remote", "origin", "refs/heads/"+branch))
	if len(f) == 0 {
		return ""
	}
	return f[0]
}

var resultsPushedTo = regexp.MustCompile(`results commit ([0-9a-f]{40}) pushed to (\S+)`)

// TestRunWithoutBranchUsesTheServersDefault: the branch HEAD names on the
// server is reconciled, whatever it is called; another branch is left alone.
func TestRunWithoutBranchUsesTheServersDefault(t *testing.T) {
	for _, def := range []string{"main", "trunk"} {
		t.Run(def, func(t *testing.T) {
			l := newLab(t)
			source := l.Commit("sweep", trivialSweep(2)) // on main
			if def != "main" {
				l.Git(l.Peer, "push", "-q", "origin", "HEAD:"+def)
				l.Git(filepath.Join(l.Srv.Root(), "lab.git"), "symbolic-ref", "HEAD", "refs/heads/"+def)
			}
			r := runWithoutBranch(t, l.URL()).execForTest(t)
			if r.code != 0 {
				t.Fatalf("exit %d: %v\n%s\n%s", r.code, r.err, r.stdout, r.stderr)
			}
			if want := "(remote URL), branch " + def + "\n"; !strings.Contains(r.stdout, want) {
				t.Errorf("stdout lacks %q:\n%s", want, r.stdout)
			}
			m := resultsPushedTo.FindStringSubmatch(r.stdout)
			if m == nil || m[2] != def {
				t.Fatalf("no results commit pushed to %s:\n%s", def, r.stdout)
			}
			if got := serverHead(l, def); got != m[1] {
				t.Errorf("server %s = %s, want the results commit %s", def, got, m[1])
			}
			if def != "main" {
				if got := serverHead(l, "main"); got != source {
					t.Errorf("main moved to %s: only the default branch %s is reconciled", got, def)
				}
			}
		})
	}
}

// TestRunWithoutBranchLocalPaths: a bare repository's own HEAD names the
// branch without asking anyone; a clone on a detached HEAD asks its origin
// (over HTTP with the run's URL policy, or by path).
func TestRunWithoutBranchLocalPaths(t *testing.T) {
	l := newLab(t)
	l.Commit("sweep", trivialSweep(1))
	l.Git(l.Peer, "push", "-q", "origin", "HEAD:trunk")
	l.Git(filepath.Join(l.Srv.Root(), "lab.git"), "symbolic-ref", "HEAD", "refs/heads/trunk")

	root := t.TempDir()
	bare := filepath.Join(root, "local.git")
	l.Git(root, "clone", "-q", "--bare", filepath.Join(l.Srv.Root(), "lab.git"), bare) // HEAD -> trunk
	detached := func(origin string) string {
		dir := filepath.Join(t.TempDir(), "clone")
		l.Git(filepath.Dir(dir), "clone", "-q", origin, dir)
		l.Git(dir, "checkout", "-q", "--detach")
		return dir
	}
	tests := []struct {
		name, repo, via string
	}{
		{"bare repository", bare, "(bare repository)"},
		{"detached clone of the HTTP server", detached(l.URL()), "(origin of the clone at "},
		{"detached clone of a bare path", detached(bare), "(origin of the clone at "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := runWithoutBranch(t, tc.repo).execForTest(t)
			if r.code != 0 {
				t.Fatalf("exit %d: %v\n%s\n%s", r.code, r.err, r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, tc.via) || !strings.Contains(r.stdout, "branch trunk\n") {
				t.Errorf("stdout does not say %s and branch trunk:\n%s", tc.via, r.stdout)
			}
			if m := resultsPushedTo.FindStringSubmatch(r.stdout); m == nil || m[2] != "trunk" {
				t.Errorf("no results pushed to trunk:\n%s", r.stdout)
			}
		})
	}
}

// silentServer accepts connections, reads what the client sends and never
// answers (a hung server, or a firewall that accepts and stays silent). It
// counts the connections it accepted and how many are still open.
type silentServer struct {
	ln       net.Listener
	mu       sync.Mutex
	accepted int
	open     map[net.Conn]bool
	wg       sync.WaitGroup
}

func newSilentServer(t *testing.T) *silentServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &silentServer{ln: ln, open: map[net.Conn]bool{}}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			s.accepted++
			s.open[c] = true
			s.mu.Unlock()
			s.wg.Add(1)
			go func() {
				defer s.wg.Done()
				_, _ = io.Copy(io.Discard, c) // until the client hangs up
				s.mu.Lock()
				delete(s.open, c)
				s.mu.Unlock()
				c.Close()
			}()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for c := range s.open {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *silentServer) counts() (accepted, open int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted, len(s.open)
}

// waitClosed fails unless the client hung up every connection.
func (s *silentServer) waitClosed(t *testing.T) {
	t.Helper()
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, open := s.counts(); open == 0 {
			return
		} else if time.Now().After(deadline) {
			t.Errorf("%d connection(s) still open after the run returned", open)
			return
		}
	}
}

// TestRunWithoutBranchStalledServerTimesOut: a server that accepts and
// never answers ends the run with a timeout naming the repository and the
// limits — over HTTP by the idle timeout, over git:// by the operation's
// timeout — with exit 1, no secret in the output, and the connection closed.
func TestRunWithoutBranchStalledServerTimesOut(t *testing.T) {
	const user, secret = "alice", "s3cret-pw-42"
	tests := []struct {
		name   string
		scheme string
		auth   bool // git:// takes no credentials
		limits gitsource.Limits
		bound  time.Duration
	}{
		{"http idle timeout", "http", true, gitsource.Limits{IdleTimeout: 300 * time.Millisecond}, 300 * time.Millisecond},
		{"git operation timeout", "git", false, gitsource.Limits{Timeout: 500 * time.Millisecond}, 500 * time.Millisecond},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.auth {
				setGitCredentials(t, user, secret)
			}
			srv := newSilentServer(t)
			url := tc.scheme + "://" + srv.ln.Addr().String() + "/lab.git"
			o := runWithoutBranch(t, url)
			o.GitLimits = tc.limits
			r := o.execForTest(t)
			t.Logf("exit %d after %v: %v", r.code, r.took.Round(time.Millisecond), r.err)
			if r.code != 1 || !errors.Is(r.err, gitsource.ErrTimeout) {
				t.Fatalf("exit %d, err %v; want exit 1 and gitsource.ErrTimeout", r.code, r.err)
			}
			if r.took > tc.bound+3*time.Second {
				t.Errorf("returned after %v, want soon after the %v bound", r.took, tc.bound)
			}
			for _, want := range []string{"repository " + url + ": find the default branch: timed out", "limits: "} {
				if !strings.Contains(r.err.Error(), want) {
					t.Errorf("error %q lacks %q", r.err, want)
				}
			}
			if strings.Contains(r.all(), secret) {
				t.Errorf("the password shows in the output:\n%s", r.all())
			}
			if accepted, _ := srv.counts(); accepted == 0 {
				t.Errorf("the server saw no connection: the timeout was not the server's")
			}
			srv.waitClosed(t)
		})
	}
}

// TestRunWithoutBranchRefusesPlainHTTPBeforeConnecting: without
// --allow-http an http:// URL is refused by the URL policy (exit 2) before
// any connection, as it would be with --branch.
func TestRunWithoutBranchRefusesPlainHTTPBeforeConnecting(t *testing.T) {
	srv := newSilentServer(t)
	o := runWithoutBranch(t, "http://"+srv.ln.Addr().String()+"/lab.git")
	o.AllowHTTP = false
	o.GitLimits = gitsource.Limits{Timeout: 2 * time.Second}
	r := o.execForTest(t)
	if r.code != 2 || !errors.Is(r.err, gitsource.ErrUnsafeURL) {
		t.Fatalf("exit %d, err %v; want exit 2 and gitsource.ErrUnsafeURL", r.code, r.err)
	}
	if accepted, _ := srv.counts(); accepted != 0 {
		t.Errorf("%d connection(s) made before the URL was refused", accepted)
	}
}

// TestRunWithoutBranchUsesTheCredentials: the default branch is asked with
// the run's credentials (a server requiring them answers), and a wrong
// password fails exactly like a poll of the same branch would: the same
// redacted authentication error, exit 1, the password nowhere.
func TestRunWithoutBranchUsesTheCredentials(t *testing.T) {
	const user, right, wrong = "alice", "right-pw-9431", "wrong-pw-7719"
	l := &lab{gitpeer.New(t, &gitpeer.Auth{Username: user, Password: right})}
	l.Commit("sweep", trivialSweep(1))

	setGitCredentials(t, user, right)
	if r := runWithoutBranch(t, l.URL()).execForTest(t); r.code != 0 || !strings.Contains(r.stdout, "pushed to main") {
		t.Fatalf("right password: exit %d: %v\n%s\n%s", r.code, r.err, r.stdout, r.stderr)
	}

	setGitCredentials(t, user, wrong)
	r := runWithoutBranch(t, l.URL()).execForTest(t)
	t.Logf("exit %d: %v", r.code, r.err)
	if r.code != 1 || !errors.Is(r.err, gitsource.ErrAuth) {
		t.Fatalf("wrong password: exit %d, err %v; want exit 1 and gitsource.ErrAuth", r.code, r.err)
	}
	if strings.Contains(r.all(), wrong) || strings.Contains(r.all(), right) {
		t.Errorf("a password shows in the output:\n%s", r.all())
	}
	withBranch := runWithoutBranch(t, l.URL())
	withBranch.Branch = "main"
	p := withBranch.execForTest(t)
	if p.code != 1 || !errors.Is(p.err, gitsource.ErrAuth) {
		t.Fatalf("poll with the wrong password: exit %d, err %v", p.code, p.err)
	}
	if got, want := strings.Replace(r.err.Error(), ": find the default branch: ", ": poll: ", 1), p.err.Error(); got != want {
		t.Errorf("default-branch error differs from the poll's beyond the operation:\n got %s\nwant %s", got, want)
	}
}

// TestRunWithoutBranchWhenTheServerNamesNone: an empty repository says so
// and what to do (exit 1, as a poll of it would); a repository whose HEAD
// names a branch that does not exist tells the user to pass --branch (exit
// 2). Both name the repository.
func TestRunWithoutBranchWhenTheServerNamesNone(t *testing.T) {
	t.Run("empty repository", func(t *testing.T) {
		l := newLab(t)
		r := runWithoutBranch(t, l.URL()).execForTest(t)
		t.Logf("exit %d: %v", r.code, r.err)
		if r.code != 1 || !errors.Is(r.err, gitsource.ErrEmptyRepository) {
			t.Fatalf("exit %d, err %v; want exit 1 and gitsource.ErrEmptyRepository", r.code, r.err)
		}
		for _, want := range []string{"repository " + l.URL(), "has no commits", "push a first commit"} {
			if !strings.Contains(r.err.Error(), want) {
				t.Errorf("error %q lacks %q", r.err, want)
			}
		}
	})
	t.Run("HEAD names a branch that does not exist", func(t *testing.T) {
		l := newLab(t) // HEAD -> main, never pushed
		l.Git(l.Peer, "commit", "-q", "--allow-empty", "-m", "only on trunk")
		l.Git(l.Peer, "push", "-q", "origin", "HEAD:trunk")
		l.Git(l.Peer, "push", "-q", "origin", "HEAD:feature")
		r := runWithoutBranch(t, l.URL()).execForTest(t)
		t.Logf("exit %d: %v", r.code, r.err)
		if r.code != 2 || !errors.Is(r.err, gitsource.ErrRefNotFound) {
			t.Fatalf("exit %d, err %v; want exit 2 and gitsource.ErrRefNotFound", r.code, r.err)
		}
		for _, want := range []string{"repository " + l.URL(), "no default branch", "--branch"} {
			if !strings.Contains(r.err.Error(), want) {
				t.Errorf("error %q lacks %q", r.err, want)
			}
		}
		if got := serverHead(l, "trunk"); got == "" {
			t.Fatal("trunk was not pushed")
		}
	})
}

// TestRunGitTimeoutFlags: --git-idle-timeout reaches every Git operation
// of `expsync run` (here the poll of a silent server, exit 1 with the
// timeout named), and negative values are refused as usage errors.
func TestRunGitTimeoutFlags(t *testing.T) {
	srv := newSilentServer(t)
	url := "http://" + srv.ln.Addr().String() + "/lab.git"
	key, _ := labKeyPair(t)
	start := time.Now()
	code, _, stderr := labCLI(t, "run", url, "--branch", "main", "--allow-http", "--key", key, "--store", t.TempDir(),
		"--state", t.TempDir(), "--progress", "none", "--git-idle-timeout", "300ms")
	took := time.Since(start)
	if code != 1 || !strings.Contains(stderr, "timed out") || !strings.Contains(stderr, "300ms") {
		t.Fatalf("exit %d after %v: %s; want exit 1 naming the 300ms idle limit", code, took, stderr)
	}
	// 20 s: far below the 60 s default, with room for a process start on a loaded CI machine.
	if took > 20*time.Second {
		t.Errorf("returned after %v, want soon after 300ms (the default idle limit is 60s)", took)
	}
	srv.waitClosed(t)
	for _, flag := range []string{"--git-timeout", "--git-idle-timeout"} {
		code, _, stderr := labCLI(t, "run", url, "--key", key, flag, "-1s")
		if code != 2 || !strings.Contains(stderr, flag) {
			t.Errorf("%s -1s: exit %d: %s; want a usage error naming the flag", flag, code, stderr)
		}
	}
}
