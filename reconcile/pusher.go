package reconcile

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/tree"
)

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
	// deleted after that is never re-created. nil: never create.
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
	res, err := p.Source.CommitBack(ctx, req, gitsource.MergeFunc(merge))
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

// MergeFunc rebuilds a batch on a head: it returns the files to write
// (path → content; nil content deletes), none when nothing is to commit.
type MergeFunc func(head tree.Reader, ours map[string][]byte) (map[string][]byte, error)
