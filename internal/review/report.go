package review

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/expsync/expsync/internal/diff"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/tree"
)

// report is what a final report posts.
type report struct {
	status  forge.Status
	comment string
}

// ErrNoResultsYet is what Trees returns (wrapped) for a results branch that
// does not exist yet; the head's results are then its own tree's.
var ErrNoResultsYet = errors.New("no results branch yet")

const title = "expsync: runs of this pull request"

// report computes a pull request's final report: the diff against the
// merge base, the trust checks and the status they give.
func (r *Reviewer) report(ctx context.Context, pr PullRequest, o Outcome) (*report, error) {
	fpr, err := r.o.Forge.PullRequest(ctx, pr.Number)
	if err != nil {
		return nil, err
	}
	branch := resultsBranch(pr)
	out := &report{status: forge.Status{Commit: pr.Commit, State: forge.StateFailure}}
	switch {
	case o.Refused:
		out.status.Description = "commit " + short(pr.Commit) + " may not run: " + oneLine(o.Reason)
		out.comment = r.explain(out.status.Description, "Nothing ran: every commit of an untrusted pull request must be signed by an allowed key. Sign the commits (`git commit -S`) with a key the operator allows, then push again.")
		return out, nil
	case o.PlanFailed:
		out.status.Description = "the experiment files do not plan: " + oneLine(o.Reason)
		out.comment = r.explain(out.status.Description, "Nothing ran. Check the files with `expsync validate` before pushing.")
		return out, nil
	}
	rep, err := r.compare(ctx, pr, fpr, branch)
	if err != nil {
		return nil, err
	}
	out.status.TargetURL = r.o.Forge.FileURL(branch, rep.Head.ResultsRoot+"/README.md")
	out.status.State, out.status.Description = r.decide(ctx, pr, fpr, rep, o)
	out.comment = r.comment(pr, fpr, branch, rep, out.status)
	return out, nil
}

// compare diffs the pull request's head (its code, with its results
// branch's results) against the merge base with its target branch.
func (r *Reviewer) compare(ctx context.Context, pr PullRequest, fpr forge.PullRequest, branch string) (*diff.Report, error) {
	if fpr.BaseBranch == "" {
		return nil, fmt.Errorf("pull request %d: the forge did not say its target branch", pr.Number)
	}
	baseRef := "refs/heads/" + fpr.BaseBranch
	base, releaseBase, err := r.trees(ctx, baseRef, fpr.MergeBase)
	if err != nil {
		return nil, fmt.Errorf("pull request %d: read its base %s at %s: %w", pr.Number, fpr.BaseBranch, short(fpr.MergeBase), err)
	}
	defer releaseBase()
	// The base's runs are the runs the merge base's experiment files plan;
	// their results are read from the target branch as it is now. expsync
	// commits a commit's results after it, in one or more results commits
	// (and later commits keep them: results stay when code moves on), so
	// the merge base itself holds none or some of them when the pull
	// request branched off before they all landed. A run's result is the
	// same wherever it was committed (its folder is named by its run ID
	// and signed for it), and only verified folders count.
	var baseResults tree.Reader
	switch res, release, err := r.trees(ctx, baseRef, ""); {
	case err == nil:
		defer release()
		baseResults = res
	case errors.Is(err, ErrNoResultsYet):
		// The target branch is gone: the merge base's own results.
	default:
		return nil, fmt.Errorf("pull request %d: read the results of its target branch %s: %w", pr.Number, fpr.BaseBranch, err)
	}
	head, releaseHead, err := r.trees(ctx, pr.Ref, pr.Commit)
	if err != nil {
		return nil, fmt.Errorf("pull request %d: read %s at %s: %w", pr.Number, pr.Ref, short(pr.Commit), err)
	}
	defer releaseHead()
	var headResults tree.Reader
	if pr.ResultsBranch != "" {
		res, release, err := r.trees(ctx, "refs/heads/"+pr.ResultsBranch, "")
		switch {
		case err == nil:
			defer release()
			headResults = res
		case errors.Is(err, ErrNoResultsYet):
		default:
			return nil, fmt.Errorf("pull request %d: read its results branch %s: %w", pr.Number, pr.ResultsBranch, err)
		}
	}
	baseLabel := fpr.BaseBranch
	if fpr.MergeBase != "" {
		baseLabel += " (merge base)"
	}
	keys := r.o.Keys
	if r.o.TrustedKeys != nil {
		if keys, err = r.o.TrustedKeys(); err != nil {
			return nil, fmt.Errorf("pull request %d: the trusted keys: %w", pr.Number, err)
		}
	}
	return diff.Compute(
		diff.Side{Label: baseLabel, Commit: fpr.MergeBase, Code: base, Results: baseResults, ResultsLater: baseResults != nil},
		diff.Side{Label: fmt.Sprintf("pull request %d", pr.Number), Commit: pr.Commit, Code: head, Results: headResults},
		diff.Options{Keys: keys, Plan: r.o.Plan})
}

// decide gives the final state and its one-line description.
func (r *Reviewer) decide(ctx context.Context, pr PullRequest, fpr forge.PullRequest, rep *diff.Report, o Outcome) (forge.State, string) {
	t := rep.Totals
	if forged := newUnverified(rep); len(forged) > 0 {
		u := forged[0]
		return forge.StateFailure, fmt.Sprintf("%s did not verify: %s (%s)", plural(len(forged), "results folder"), oneLine(u.Dir), oneLine(u.Reason))
	}
	if !pr.Trusted {
		if only, err := r.onlyResultsChanged(ctx, pr, fpr, rep.Head.ResultsRoot); err == nil && only {
			return forge.StateFailure, "changes nothing but " + rep.Head.ResultsRoot + "/: results are committed by expsync from signed runs, not by pull requests"
		}
	}
	current := 0
	for _, e := range rep.Experiments {
		current += len(e.Changed) + len(e.Added) + e.Counts.Unchanged
	}
	switch {
	case t.Pending > 0 || o.Held > 0 || o.Err != nil:
		d := fmt.Sprintf("%d of %d runs done", current, current+t.Pending)
		if o.Held > 0 {
			d += fmt.Sprintf("; %d held: they cannot run on this machine", o.Held)
		} else if o.Err != nil {
			d += "; retrying after an error"
		}
		return forge.StatePending, d
	case t.Failed > 0:
		d := fmt.Sprintf("%d of %d runs failed", t.Failed, current)
		if t.Regressions > 0 {
			d += fmt.Sprintf(" (%d succeeded on %s)", t.Regressions, fpr.BaseBranch)
		}
		return forge.StateFailure, d
	}
	return forge.StateSuccess, fmt.Sprintf("%d runs succeeded; %d changed, %d added, %d removed against %s", current, t.Changed, t.Added, t.Removed, fpr.BaseBranch)
}

// newUnverified are the head's unverified folders that the base does not
// have too: what this pull request pushed into the results folder.
func newUnverified(rep *diff.Report) []diff.Unverified {
	onBase := map[string]bool{}
	for _, u := range rep.Unverified {
		if u.Side == "base" {
			onBase[u.Dir] = true
		}
	}
	var out []diff.Unverified
	for _, u := range rep.Unverified {
		if u.Side == "head" && !onBase[u.Dir] {
			out = append(out, u)
		}
	}
	return out
}

// comment is the Markdown of the pull request's one comment.
func (r *Reviewer) comment(pr PullRequest, fpr forge.PullRequest, branch string, rep *diff.Report, st forge.Status) string {
	marker := forge.Marker(r.o.Context)
	icon := map[forge.State]string{forge.StateSuccess: "✅", forge.StateFailure: "❌", forge.StatePending: "⏳"}[st.State]
	intro := fmt.Sprintf("%s **%s** — results on [%s](%s), signed and verified.",
		icon, diff.EscapeMarkdown(st.Description, 300), diff.CodeSpan(branch, 100), r.o.Forge.FileURL(branch, rep.Head.ResultsRoot+"/README.md"))
	full := fmt.Sprintf("For the whole diff, fetch %s, %s and %s, then run %s.",
		diff.CodeSpan("refs/heads/"+fpr.BaseBranch, 100), diff.CodeSpan(pr.Ref, 100), diff.CodeSpan("refs/heads/"+branch, 100),
		diff.CodeSpan(fmt.Sprintf("expsync diff %s %s --base-results %s --head-results %s --key KEY.pub", short(rep.Base.Commit), short(pr.Commit), fpr.BaseBranch, branch), 300))
	budget := r.o.Forge.MaxCommentBytes() - len(marker) - 64
	md := diff.Markdown(rep, diff.MarkdownOptions{Title: title, Intro: intro, MaxRows: 100, MaxBytes: budget, Full: full,
		Link: func(p string) string { return r.o.Forge.FileURL(branch, p) }})
	return marker + "\n" + string(md)
}

// explain is the comment of a pull request that did not run.
func (r *Reviewer) explain(what, todo string) string {
	return forge.Marker(r.o.Context) + "\n### " + title + "\n\n❌ **" + diff.EscapeMarkdown(what, 300) + "**\n\n" + todo + "\n"
}

// onlyResultsChanged tells whether the pull request's head differs from
// its merge base only below the results folder.
func (r *Reviewer) onlyResultsChanged(ctx context.Context, pr PullRequest, fpr forge.PullRequest, root string) (bool, error) {
	if fpr.MergeBase == "" {
		return false, nil
	}
	base, releaseBase, err := r.trees(ctx, "refs/heads/"+fpr.BaseBranch, fpr.MergeBase)
	if err != nil {
		return false, err
	}
	defer releaseBase()
	head, releaseHead, err := r.trees(ctx, pr.Ref, pr.Commit)
	if err != nil {
		return false, err
	}
	defer releaseHead()
	changed, outside, err := changedPaths(base, head, "", root)
	return changed && !outside, err
}

// changedPaths compares folder dir of two trees, descending only into
// folders whose tree IDs differ: changed is whether anything differs,
// outside whether anything outside root does.
func changedPaths(a, b tree.Reader, dir, root string) (changed, outside bool, err error) {
	ea, err := entries(a, dir)
	if err != nil {
		return false, false, err
	}
	eb, err := entries(b, dir)
	if err != nil {
		return false, false, err
	}
	names := map[string]bool{}
	for n := range ea {
		names[n] = true
	}
	for n := range eb {
		names[n] = true
	}
	for n := range names {
		x, y := ea[n], eb[n]
		if x == y {
			continue
		}
		p := tree.Join(dir, n)
		changed = true
		if p == root || strings.HasPrefix(p, root+"/") {
			continue
		}
		if x.IsDir() && y.IsDir() && (root == "" || strings.HasPrefix(root, p+"/")) {
			c, o, err := changedPaths(a, b, p, root)
			if err != nil || o {
				return true, o, err
			}
			changed = changed || c
			continue
		}
		return true, true, nil
	}
	return changed, false, nil
}

func entries(r tree.Reader, dir string) (map[string]tree.Entry, error) {
	list, err := r.ReadDir(dir)
	if errors.Is(err, tree.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	out := make(map[string]tree.Entry, len(list))
	for _, e := range list {
		e.Size = 0 // sizes are not what tells trees apart
		out[e.Name] = e
	}
	return out, nil
}

func resultsBranch(pr PullRequest) string {
	if pr.ResultsBranch != "" {
		return pr.ResultsBranch
	}
	return strings.TrimPrefix(pr.Ref, "refs/heads/")
}

func short(c string) string {
	if len(c) > 10 {
		return c[:10]
	}
	return c
}

func oneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if r := []rune(s); len(r) > 120 {
		return string(r[:119]) + "…"
	}
	return s
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
