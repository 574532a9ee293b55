package reconcile

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/executor/local"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// LocalExecutor adapts executor/local to Executor: submit, wait, and cancel
// the run when ctx ends.
type LocalExecutor struct {
	Executor *local.Executor
	// Meta is journalled with each run (repository, experiment...).
	Meta func(c contract.Contract) map[string]string
}

// Execute implements Executor.
func (l LocalExecutor) Execute(ctx context.Context, run render.Run) (*contract.Result, error) {
	c := render.Contract(run)
	var meta map[string]string
	if l.Meta != nil {
		meta = l.Meta(c)
	}
	job, err := l.Executor.Submit(c, meta)
	if err != nil {
		return nil, err
	}
	res, err := job.Wait(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if !l.Executor.Abandon(job) {
			return job.Result() // ended: its process group is gone
		}
		// Another branch that plans the same run still waits for it: it
		// goes on for that branch, and is cancelled for this one.
		now := time.Now().UTC()
		return &contract.Result{RunID: c.RunID, Status: contract.Cancelled, ExitCode: -1, StartedAt: now, FinishedAt: now,
			Error: "cancelled for this branch; the run goes on for another branch that plans it"}, nil
	}
	return res, err
}

// GitPusher commits to one branch of a gitsource.Source.
type GitPusher struct {
	Source *gitsource.Source
	// Branch receives the results (short name); StartFrom is the ref a
	// missing results branch starts from.
	Branch, StartFrom string
	Author            gitsource.Signature
	Signer            gitsource.Signer
	// MayCreate, shared by the batches of one reconcile, is set when
	// Branch did not exist as the reconcile started (a results branch not
	// pushed yet) and cleared once a commit finds or creates it: a branch
	// deleted after that is never re-created (QA F9). nil: never create.
	MayCreate *atomic.Bool
	// Contains is the commit the results came from: every commit goes
	// only onto a head that contains it (of Branch, or of ContainsRef for
	// a results branch), see gitsource.CommitRequest.Contains.
	Contains, ContainsRef string
}

// ErrHistoryRewritten wraps a commit-back refused because the branch no
// longer contains the commit the runs came from: their results stay in
// the run cache, and a reconcile of the new head recovers the runs it
// plans without running them again.
var ErrHistoryRewritten = errors.New("history rewritten during the runs")

// CommitBack implements Pusher. The merge always runs on the head the push
// goes to (Base is left empty), so summaries reflect every run folder there.
func (p GitPusher) CommitBack(ctx context.Context, message string, files map[string][]byte, merge MergeFunc) (string, error) {
	req := gitsource.CommitRequest{
		Branch: p.Branch, Files: files, StartFrom: p.StartFrom,
		Create:  p.MayCreate != nil && p.MayCreate.Load(),
		Message: message, Author: p.Author, Signer: p.Signer,
		Contains: p.Contains, ContainsRef: p.ContainsRef,
	}
	res, err := p.Source.CommitBack(ctx, req, func(base tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
		changes, err := merge(base, ours)
		return map[string][]byte(changes), err
	})
	if res.BranchExists && p.MayCreate != nil {
		p.MayCreate.Store(false)
	}
	if errors.Is(err, gitsource.ErrNotContained) {
		return "", fmt.Errorf("%w: results kept in the run cache; the new head is reconciled as a new commit: %w", ErrHistoryRewritten, err)
	}
	if errors.Is(err, gitsource.ErrBranchDeleted) {
		// The runner's run cache still holds every result: a later
		// reconcile of a branch with these runs recovers them.
		return "", fmt.Errorf("branch %s was deleted; results kept in the run cache: %w", p.Branch, err)
	}
	if err != nil {
		return "", err
	}
	if res.NothingToCommit || !res.Pushed {
		return "", nil
	}
	return res.Commit, nil
}

// MergeFunc rebuilds a batch on a head (see results.Layout.Merge).
type MergeFunc func(head tree.Reader, ours map[string][]byte) (results.Changes, error)

func bytesReader(b []byte) io.Reader { return bytes.NewReader(b) }
