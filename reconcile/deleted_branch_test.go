package reconcile

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/gitsource"
)

// TestDeletedBranchIsNotRecreated: the branch is deleted while
// expsync commits its results (a merged pull request's branch). The push
// must not resurrect it; the error says so, and the results stay in the
// run cache: when the branch comes back, they are committed without a rerun.
func TestDeletedBranchIsNotRecreated(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	source := h.Commit("sweep", squareExperiment(marker, "1, 2"))
	// Like a pull request's branch, main may be deleted on this server.
	h.Git(filepath.Join(h.Srv.Root(), "lab.git"), "config", "receive.denyDeleteCurrent", "ignore")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := h.open(ctx)
	src := h.source(l)
	ch := h.mainChange(ctx, src)
	snap, err := src.Snapshot(ctx, ch.Ref, ch.New)
	if err != nil {
		t.Fatal(err)
	}
	pusher := &racingPusher{
		inner: GitPusher{Source: src, Branch: "main", Author: gitsource.Signature{Name: "expsync", Email: "expsync@localhost"}},
		race:  func() { h.Git(h.Peer, "push", "-q", "origin", ":main") },
	}
	_, err = l.Reconciler.Reconcile(ctx, Target{Repository: src.URL(), Ref: ch.Ref, Commit: ch.New, Tree: snap, Pusher: pusher})
	if !errors.Is(err, gitsource.ErrBranchDeleted) || !strings.Contains(err.Error(), "branch main was deleted; results kept in the run cache") {
		t.Fatalf("reconcile error = %v; want the deleted branch reported", err)
	}
	if out := h.Git(h.Peer, "ls-remote", "origin", "refs/heads/main"); out != "" {
		t.Fatalf("main was re-created: %s", out)
	}
	snap.Close()
	if err := l.Close(context.Background()); err != nil { // the next `expsync run` needs the state folder
		t.Fatal(err)
	}

	// The branch comes back: the results come from the run cache.
	h.Git(h.Peer, "push", "-q", "origin", source+":refs/heads/main")
	rep := h.reconcile()
	if rep.Recovered != 2 || rep.Executed != 0 || len(rep.Commits) != 1 {
		t.Errorf("after the branch came back: %+v; want 2 runs recovered from the run cache, none executed", rep)
	}
	if d := cmp.Diff([]string{"1", "2"}, markerLines(t, marker)); d != "" {
		t.Errorf("executions (-want +got):\n%s", d)
	}
}
