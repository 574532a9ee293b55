package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
)

// reconcileRef reconciles one ref with the given policy, as `expsync run
// --branch` (trusted) or a watched untrusted pattern would.
func (h *harness) reconcileRef(ref string, policy gitsource.RefPolicy, verify *gitsource.VerifyPolicy) (*Report, error) {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	src, err := l.Source(gitsource.Repository{
		URL: h.URL(), Auth: &gitsource.Auth{Username: gitUser, Password: gitPassword},
		URLPolicy: gitsource.URLPolicy{AllowHTTP: true}, Refs: []gitsource.RefPolicy{policy}, Verify: verify,
	})
	if err != nil {
		h.t.Fatal(err)
	}
	changes, err := src.Poll(ctx)
	if err != nil {
		h.t.Fatal(err)
	}
	for _, c := range changes {
		if c.Ref == ref {
			return l.ReconcileRef(ctx, src, c)
		}
	}
	h.t.Fatalf("%s not reported: %+v", ref, changes)
	return nil, nil
}

// TestTwoBranchesRunOnce: a second branch planning the same runs gets them
// from the run cache, committed to that branch, without running them again.
func TestTwoBranchesRunOnce(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("sweep", squareExperiment(marker, "1, 2"))
	h.Git(h.Peer, "push", "-q", "origin", "HEAD:refs/heads/exp")
	h.reconcile()
	rep, err := h.reconcileRef("refs/heads/exp", gitsource.RefPolicy{Pattern: "exp", Trusted: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Recovered != 2 || rep.Executed != 0 || len(rep.Commits) != 1 {
		t.Errorf("second branch: %+v", rep)
	}
	if n := len(markerLines(t, marker)); n != 2 {
		t.Errorf("two branches executed %d runs, want 2", n)
	}
	exp := filepath.Join(t.TempDir(), "exp")
	h.Git(filepath.Dir(exp), "clone", "-q", "-b", "exp", h.Srv.HTTPAddressWithCredentials()+"/lab.git", exp)
	for _, dir := range runFolders(t, exp, "square") {
		if err := h.verifyFolder(dir); err != nil {
			t.Errorf("exp branch: %v", err)
		}
	}
}

// TestUntrustedRefNeedsSignedCommits: an untrusted ref whose commit is not
// signed by an allowed key runs nothing and commits nothing.
func TestUntrustedRefNeedsSignedCommits(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	source := h.Commit("unsigned", squareExperiment(marker, "1"))
	allowed := "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl maintainer@lab"
	rep, err := h.reconcileRef("refs/heads/main", gitsource.RefPolicy{Pattern: "main", Trusted: false},
		&gitsource.VerifyPolicy{SSHKeys: []string{allowed}})
	if !errors.Is(err, ErrNotRunnable) {
		t.Fatalf("unsigned commit on an untrusted ref: err %v, report %+v", err, rep)
	}
	if lines := markerLines(t, marker); len(lines) != 0 || h.Head() != source {
		t.Errorf("an unsigned commit ran (%d runs) or was committed to", len(lines))
	}
}

// TestResultsBranch: a ref whose results go to a results branch (as pull
// requests from forks do) leaves the ref alone, starts the results branch
// from it, and finds its done runs there the next time.
func TestResultsBranch(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("sweep", squareExperiment(marker, "1, 2"))
	exp := h.Git(h.Peer, "rev-parse", "HEAD")
	h.Git(h.Peer, "push", "-q", "origin", "HEAD:refs/heads/exp")
	policy := gitsource.RefPolicy{Pattern: "exp", Trusted: true, ResultsBranch: "results/exp"}
	rep, err := h.reconcileRef("refs/heads/exp", policy, nil)
	if err != nil || rep.Executed != 2 || len(rep.Commits) != 1 {
		t.Fatalf("first reconcile: %+v, %v", rep, err)
	}
	if got := strings.Fields(h.Git(h.Peer, "ls-remote", "origin", "refs/heads/exp"))[0]; got != exp {
		t.Errorf("the source ref moved to %s", got)
	}
	results := strings.Fields(h.Git(h.Peer, "ls-remote", "origin", "refs/heads/results/exp"))
	if len(results) == 0 || results[0] != rep.Commits[0] {
		t.Fatalf("results branch: %v, want %s", results, rep.Commits)
	}
	h.Git(h.Peer, "fetch", "-q", "origin", "results/exp")
	if parent := h.Git(h.Peer, "rev-parse", rep.Commits[0]+"^"); parent != exp {
		t.Errorf("results branch starts from %s, want the ref's commit %s", parent, exp)
	}
	rep, err = h.reconcileRef("refs/heads/exp", policy, nil)
	if err != nil || !rep.NothingToDo() || rep.Done != 2 {
		t.Errorf("second reconcile: %+v, %v", rep, err)
	}
	if n := len(markerLines(t, marker)); n != 2 {
		t.Errorf("executed %d runs, want 2", n)
	}
}
