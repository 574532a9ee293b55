package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/tree"
)

// racingPusher lets a peer push to the branch after expsync read the head
// and before it pushes: the first push loses the race for real.
type racingPusher struct {
	inner  Pusher
	race   func()
	once   sync.Once
	merges int
}

func (p *racingPusher) CommitBack(ctx context.Context, msg string, files map[string][]byte, merge MergeFunc) (string, error) {
	return p.inner.CommitBack(ctx, msg, files, func(head tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
		p.merges++
		p.once.Do(p.race)
		return merge(head, ours)
	})
}

// TestPushRaceIsRetried: a push rejected because someone pushed meanwhile
// is rebuilt on the new head and lands, keeping the other commit.
func TestPushRaceIsRetried(t *testing.T) {
	h := newHarness(t)
	source := h.Commit("sweep", squareExperiment(filepath.Join(t.TempDir(), "marker"), "1, 2"))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	src := h.source(l)
	ch := h.mainChange(ctx, src)
	snap, err := src.Snapshot(ctx, ch.Ref, ch.New)
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Close()
	var peerCommit string
	pusher := &racingPusher{
		inner: GitPusher{Source: src, Branch: "main", Author: gitsource.Signature{Name: "expsync", Email: "expsync@localhost"}},
		race:  func() { peerCommit = h.Commit("meanwhile", map[string]string{"NOTES.md": "pushed during the run\n"}) },
	}
	rep, err := l.Reconciler.Reconcile(ctx, Target{Repository: src.URL(), Ref: ch.Ref, Commit: ch.New, Tree: snap, Pusher: pusher})
	if err != nil {
		t.Fatal(err)
	}
	if pusher.merges < 2 {
		t.Errorf("merge ran %d times: the race was not lost and retried", pusher.merges)
	}
	if len(rep.Commits) != 1 || rep.Commits[0] != h.Head() {
		t.Fatalf("results commit %v, head %s", rep.Commits, h.Head())
	}
	clone := h.Clone()
	if parent := h.Git(clone, "rev-parse", "HEAD^"); parent != peerCommit || peerCommit == source {
		t.Errorf("results commit built on %s, want the peer's %s", parent, peerCommit)
	}
	if _, err := os.Stat(filepath.Join(clone, "NOTES.md")); err != nil {
		t.Errorf("the peer's commit was lost: %v", err)
	}
	if n := len(runFolders(t, clone, "square")); n != 2 {
		t.Errorf("want 2 run folders, got %d", n)
	}
}
