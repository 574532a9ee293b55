package reconcile

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/gitpeer"
)

func gitIn(t *testing.T, dir string, args ...string) {
	t.Helper()
	if _, err := gitpeer.Git(dir, args...); err != nil {
		t.Fatalf("git %v: %v", args, err)
	}
}

// countingListener counts the connections made to it (and closes them), so
// a test proves that nothing was asked over the network.
func countingListener(t *testing.T) (addr string, conns *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	conns = new(atomic.Int64)
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Add(1)
			c.Close()
		}
	}()
	return ln.Addr().String(), conns
}

// ResolveRepository decides URL and branch from what is on disk and never
// asks a server: a branch it cannot tell locally stays "" for
// WithDefaultBranch.
func TestResolveRepositoryIsLocal(t *testing.T) {
	addr, conns := countingListener(t)
	remote := "http://" + addr + "/lab.git"
	root := t.TempDir()
	bare := filepath.Join(root, "b.git")
	gitIn(t, root, "init", "-q", "--bare", "-b", "trunk", bare)
	work := filepath.Join(root, "work")
	gitIn(t, root, "init", "-q", "-b", "feature", work)
	gitIn(t, work, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "one")
	gitIn(t, work, "remote", "add", "origin", remote)
	detached := filepath.Join(root, "detached")
	gitIn(t, root, "clone", "-q", work, detached)
	gitIn(t, detached, "checkout", "-q", "--detach")
	gitIn(t, detached, "remote", "set-url", "origin", "../b.git") // relative to the clone

	tests := []struct {
		name, arg, branch string
		want              RepoTarget
	}{
		{"remote URL", remote, "", RepoTarget{URL: remote, Via: "remote URL"}},
		{"remote URL with --branch", remote, "x", RepoTarget{URL: remote, Branch: "x", Via: "remote URL"}},
		{"bare repository: its HEAD", bare, "", RepoTarget{URL: bare, Branch: "trunk", Via: "bare repository"}},
		{"clone on a branch", work, "", RepoTarget{URL: remote, Branch: "feature", Via: "origin of the clone at " + work}},
		{"detached clone: relative origin", detached, "", RepoTarget{URL: bare, Via: "origin of the clone at " + detached}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ResolveRepository(tc.arg, tc.branch)
			if err != nil {
				t.Fatal(err)
			}
			if d := cmp.Diff(tc.want, got); d != "" {
				t.Errorf("(-want +got):\n%s", d)
			}
		})
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connection(s) to the remote: ResolveRepository must not use the network", n)
	}
}

// WithDefaultBranch keeps a known branch without asking; otherwise it asks
// through gitsource (here a bare repository by path, and a stalled server
// bounded by the repository's limits).
func TestWithDefaultBranch(t *testing.T) {
	addr, conns := countingListener(t)
	remote := RepoTarget{URL: "http://" + addr + "/lab.git", Branch: "given"}
	allowHTTP := gitsource.Repository{URLPolicy: gitsource.URLPolicy{AllowHTTP: true}}
	if got, err := WithDefaultBranch(context.Background(), remote, allowHTTP); err != nil || got != remote {
		t.Errorf("explicit branch: %+v, %v; want it unchanged", got, err)
	}
	if n := conns.Load(); n != 0 {
		t.Errorf("%d connection(s) although the branch was given", n)
	}

	root := t.TempDir()
	bare := filepath.Join(root, "b.git")
	gitIn(t, root, "init", "-q", "--bare", "-b", "trunk", bare)
	work := filepath.Join(root, "work")
	gitIn(t, root, "init", "-q", "-b", "trunk", work)
	gitIn(t, work, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "one")
	gitIn(t, work, "push", "-q", bare, "trunk")
	got, err := WithDefaultBranch(context.Background(), RepoTarget{URL: bare}, gitsource.Repository{})
	if err != nil || got.Branch != "trunk" {
		t.Errorf("bare path: %+v, %v; want branch trunk", got, err)
	}

	empty := filepath.Join(root, "empty.git")
	gitIn(t, root, "init", "-q", "--bare", empty)
	_, err = WithDefaultBranch(context.Background(), RepoTarget{URL: empty}, gitsource.Repository{})
	if !errors.Is(err, gitsource.ErrEmptyRepository) {
		t.Errorf("empty repository: %v, want gitsource.ErrEmptyRepository", err)
	}

	// A listener that accepts and closes at once is not a stall; use one
	// that never answers.
	silent, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	go func() {
		for {
			c, err := silent.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	stalled := gitsource.Repository{URLPolicy: gitsource.URLPolicy{AllowHTTP: true}, Limits: gitsource.Limits{IdleTimeout: 200 * time.Millisecond}}
	t0 := time.Now()
	_, err = WithDefaultBranch(context.Background(), RepoTarget{URL: "http://" + silent.Addr().String() + "/x.git"}, stalled)
	if !errors.Is(err, gitsource.ErrTimeout) || time.Since(t0) > 3*time.Second {
		t.Errorf("stalled server: %v after %v, want gitsource.ErrTimeout soon after 200ms", err, time.Since(t0))
	}
}
