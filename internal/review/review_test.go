package review_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	gitea "gitea.dev/sdk"

	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/internal/giteatest"
	"github.com/expsync/expsync/internal/review"
	"github.com/expsync/expsync/tree"
)

type logLines struct {
	mu    sync.Mutex
	lines []string
}

func (l *logLines) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logLines) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// TestForgeDownDelaysTheReportOnly: with the forge failing (500 and 429,
// forever until it recovers), Finished returns at once, the failure is
// logged without the token, and the report is posted once the forge
// answers again: one status, one comment.
func TestForgeDownDelaysTheReportOnly(t *testing.T) {
	g := giteatest.Start(t)
	ctx := context.Background()
	admin, err := gitea.NewClient(g.URL, gitea.SetToken(g.Token), gitea.SetGiteaVersion(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.Repositories.CreateRepo(ctx, gitea.CreateRepoOption{Name: "exps", DefaultBranch: "main"}); err != nil {
		t.Fatal(err)
	}
	_, _, head := g.PushBranches(t, g.User, "exps")
	g.OpenPullRequest(t, g.User, "exps", "feature", "main", "f")
	flaky := giteatest.NewFlakyProxy(t, g.URL)
	flaky.Down.Store(true)
	client, err := forge.New(forge.Config{Kind: forge.Gitea, URL: flaky.URL, WebURL: g.URL, Repository: g.User + "/exps", Token: g.Token,
		Retry: forge.RetryPolicy{Attempts: 2, Base: 10 * time.Millisecond, Max: 20 * time.Millisecond}})
	if err != nil {
		t.Fatal(err)
	}
	var log logLines
	noTrees := func(context.Context, string, string) (tree.Reader, func(), error) {
		t.Error("a refused commit's report reads no tree")
		return nil, nil, fmt.Errorf("no trees")
	}
	rv := review.New(review.Options{Forge: client, Log: log.logf, RetryBase: 50 * time.Millisecond, RetryMax: 200 * time.Millisecond}, noTrees)
	defer rv.Close(ctx)

	pr := review.PullRequest{Number: 1, Ref: "refs/pull/1/head", Commit: head, ResultsBranch: "expsync/results/pr-1"}
	start := time.Now()
	rv.Progress(pr, review.Progress{Planned: 3})
	rv.Finished(pr, review.Outcome{Refused: true, Reason: "commit " + head[:10] + " is not signed"})
	if d := time.Since(start); d > 100*time.Millisecond {
		t.Errorf("Progress and Finished took %s with the forge down: they must not wait for it", d)
	}
	deadline := time.Now().Add(30 * time.Second)
	for flaky.Failures.Load() < 10 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if strings.Contains(log.String(), g.Token) {
		t.Fatalf("the token is in the log:\n%s", log.String())
	}
	if !strings.Contains(log.String(), "report not posted") {
		t.Errorf("the failing forge was not logged:\n%s", log.String())
	}
	logged := strings.Count(log.String(), "report not posted")
	flaky.Down.Store(false)

	var final *gitea.Status
	for time.Now().Before(deadline) && final == nil {
		c, _, err := admin.Repositories.GetCombinedStatus(ctx, g.User, "exps", head)
		if err == nil && len(c.Statuses) > 0 && c.Statuses[0].State == gitea.StatusFailure {
			final = c.Statuses[0]
		}
		time.Sleep(50 * time.Millisecond)
	}
	if final == nil || !strings.Contains(final.Description, "may not run: commit") {
		t.Fatalf("no failure status after the forge recovered: %+v\nlog:\n%s", final, log.String())
	}
	if logged > 4 {
		t.Errorf("the failure was logged %d times: once per change of error is enough:\n%s", logged, log.String())
	}
	cs, _, err := admin.Issues.ListIssueComments(ctx, g.User, "exps", 1, gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 1 || !strings.Contains(cs[0].Body, "git commit -S") {
		t.Errorf("comments after recovery: %d (want 1 saying how to sign)", len(cs))
	}
	if bytes.Contains([]byte(cs[0].Body), []byte(g.Token)) {
		t.Errorf("the comment holds the token")
	}
}
