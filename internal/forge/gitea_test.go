package forge

import (
	"context"
	"strings"
	"testing"

	gitea "gitea.dev/sdk"

	"github.com/expsync/expsync/internal/giteatest"
)

// giteaLab is a real Gitea with a repository holding a pull request (#1,
// branch feature into main): what the Gitea client is tested against.
type giteaLab struct {
	g              *giteatest.Forge
	admin          *gitea.Client
	base, head, mb string
}

func newGiteaLab(t *testing.T) *giteaLab {
	t.Helper()
	g := giteatest.Start(t)
	ctx := context.Background()
	admin, err := gitea.NewClient(g.URL, gitea.SetToken(g.Token), gitea.SetGiteaVersion(""))
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := admin.Repositories.CreateRepo(ctx, gitea.CreateRepoOption{Name: "exps", DefaultBranch: "main"}); err != nil {
		t.Fatalf("create repository: %v", err)
	}
	l := &giteaLab{g: g, admin: admin}
	_, l.base, l.head = g.PushBranches(t, g.User, "exps")
	l.mb = l.base
	g.OpenPullRequest(t, g.User, "exps", "feature", "main", "feature")
	return l
}

func (l *giteaLab) client(t *testing.T) Client {
	t.Helper()
	c, err := New(Config{Kind: Gitea, URL: l.g.URL, Repository: l.g.User + "/exps", Token: l.g.Token})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// TestGitea runs the client against a real Gitea: a status read back
// through Gitea's API, one comment created then edited (also by a client
// started afresh), a marker in another user's comment left alone, and the
// pull request's base branch and merge base.
func TestGitea(t *testing.T) {
	l := newGiteaLab(t)
	ctx := context.Background()
	c := l.client(t)
	owner := l.g.User

	pr, err := c.PullRequest(ctx, 1)
	if err != nil || pr.BaseBranch != "main" || pr.HeadCommit != l.head || pr.MergeBase != l.mb || !strings.Contains(pr.URL, "/pulls/1") {
		t.Fatalf("pull request 1: %+v, %v; want base main, head %s, merge base %s", pr, err, l.head, l.mb)
	}
	if _, err := c.PullRequest(ctx, 99); err == nil {
		t.Errorf("pull request 99 found")
	}

	for _, st := range []Status{{Commit: l.head, Context: "expsync", State: StatePending, Description: "1 of 4 runs done"},
		{Commit: l.head, Context: "expsync", State: StateSuccess, Description: "4 runs succeeded", TargetURL: c.FileURL("main", "results/README.md")}} {
		if err := c.SetStatus(ctx, st); err != nil {
			t.Fatal(err)
		}
	}
	combined, _, err := l.admin.Repositories.GetCombinedStatus(ctx, owner, "exps", l.head)
	if err != nil {
		t.Fatal(err)
	}
	if combined.State != gitea.StatusSuccess || len(combined.Statuses) != 1 || combined.Statuses[0].Description != "4 runs succeeded" ||
		combined.Statuses[0].TargetURL != l.g.URL+owner+"/exps/src/branch/main/results/README.md" {
		t.Errorf("combined status: %+v (statuses %+v)", combined, combined.Statuses)
	}

	// Another user writes a comment holding the marker.
	mustChange := false
	if _, _, err := l.admin.Admin.CreateUser(ctx, gitea.CreateUserOption{Username: "mallory", Email: "m@example.org", Password: "mallory-pass-1", MustChangePassword: &mustChange}); err != nil {
		t.Fatal(err)
	}
	mallory, err := gitea.NewClient(l.g.URL, gitea.SetBasicAuth("mallory", "mallory-pass-1"), gitea.SetGiteaVersion(""))
	if err != nil {
		t.Fatal(err)
	}
	marker := Marker("expsync")
	if _, _, err := mallory.Issues.CreateIssueComment(ctx, owner, "exps", 1, gitea.CreateIssueCommentOption{Body: marker + "\nall green (forged)"}); err != nil {
		t.Fatal(err)
	}
	first, err := c.UpsertComment(ctx, 1, marker, marker+"\n1 run changed")
	if err != nil || !first.Created {
		t.Fatalf("first upsert: %+v, %v", first, err)
	}
	second, err := l.client(t).UpsertComment(ctx, 1, marker, marker+"\n2 runs changed")
	if err != nil || !second.Edited || second.ID != first.ID {
		t.Fatalf("upsert by a new client: %+v, %v (first %+v)", second, err, first)
	}
	comments, _, err := l.admin.Issues.ListIssueComments(ctx, owner, "exps", 1, gitea.ListIssueCommentOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ours := 0
	for _, cm := range comments {
		switch cm.Poster.UserName {
		case owner:
			ours++
			if !strings.Contains(cm.Body, "2 runs changed") {
				t.Errorf("our comment: %q", cm.Body)
			}
		case "mallory":
			if !strings.Contains(cm.Body, "forged") {
				t.Errorf("mallory's comment was edited: %q", cm.Body)
			}
		}
	}
	if ours != 1 || len(comments) != 2 {
		t.Errorf("%d comments, %d of them ours; want 2 and 1", len(comments), ours)
	}

	// A wrong token: refused, and the token is in no error.
	bad, _ := New(Config{Kind: Gitea, URL: l.g.URL, Repository: owner + "/exps", Token: "wrong-" + l.g.Token})
	if err := bad.SetStatus(ctx, Status{Commit: l.head, Context: "expsync", State: StateSuccess}); err == nil || strings.Contains(err.Error(), l.g.Token) {
		t.Errorf("a wrong token: %v", err)
	}
}
