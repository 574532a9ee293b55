package forge

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"
)

// docAPISuite runs the same behaviour checks against one forge's
// documented API.
type docAPISuite struct {
	fixture func(t *testing.T, token string, retry RetryPolicy) (*docAPI, Client, *httptest.Server)
	// status reads back a status request body as the Status sent.
	status       func(body map[string]any) Status
	commentsPath string
}

const testToken = "tok-3f9c1e0b7d5a"

func str(v any) string {
	s, _ := v.(string)
	return s
}

func runDocAPISuite(t *testing.T, s docAPISuite) {
	ctx := context.Background()
	sha := strings.Repeat("ab", 20)
	marker := Marker("expsync")

	t.Run("status", func(t *testing.T) {
		api, c, _ := s.fixture(t, testToken, RetryPolicy{})
		long := strings.Repeat("é", 200)
		for _, st := range []Status{
			{Commit: sha, Context: "expsync", State: StatePending, Description: "3 of 12 runs done"},
			{Commit: sha, Context: "expsync", State: StateFailure, Description: long, TargetURL: "https://forge.example/results"},
		} {
			if err := c.SetStatus(ctx, st); err != nil {
				t.Fatal(err)
			}
		}
		if len(api.statuses) != 2 {
			t.Fatalf("%d statuses recorded, want 2", len(api.statuses))
		}
		got := s.status(api.statuses[0])
		if got != (Status{Commit: sha, Context: "expsync", State: StatePending, Description: "3 of 12 runs done"}) {
			t.Errorf("first status %+v", got)
		}
		got = s.status(api.statuses[1])
		if got.State != StateFailure || got.TargetURL != "https://forge.example/results" || len([]rune(got.Description)) != MaxDescriptionRunes {
			t.Errorf("second status %+v (description of %d runes, want %d)", got, len([]rune(got.Description)), MaxDescriptionRunes)
		}
	})

	t.Run("one comment, edited in place, found again after a restart", func(t *testing.T) {
		api, c, srv := s.fixture(t, testToken, RetryPolicy{})
		api.addComment(8, "alice", "LGTM")
		first, err := c.UpsertComment(ctx, 8, marker, marker+"\n\n3 runs changed")
		if err != nil || !first.Created {
			t.Fatalf("first upsert: %+v, %v", first, err)
		}
		second, err := c.UpsertComment(ctx, 8, marker, marker+"\n\n4 runs changed")
		if err != nil || !second.Edited || second.ID != first.ID {
			t.Fatalf("second upsert: %+v, %v (first %+v)", second, err, first)
		}
		same, err := c.UpsertComment(ctx, 8, marker, marker+"\n\n4 runs changed")
		if err != nil || same.Edited || same.Created || same.ID != first.ID {
			t.Fatalf("unchanged upsert: %+v, %v", same, err)
		}
		// A new client (serve restarted) finds the comment by its marker.
		restarted, err := New(Config{Kind: c.Kind(), URL: srv.URL, Repository: repoOf(c), Token: testToken})
		if err != nil {
			t.Fatal(err)
		}
		again, err := restarted.UpsertComment(ctx, 8, marker, marker+"\n\n5 runs changed")
		if err != nil || !again.Edited || again.ID != first.ID {
			t.Fatalf("upsert after restart: %+v, %v", again, err)
		}
		ours := api.commentsOn(8, api.me)
		if len(ours) != 1 || !strings.Contains(ours[0].Body, "5 runs changed") {
			t.Fatalf("comments of the token's user: %+v, want one with the last body", ours)
		}
		if len(api.commentsOn(8, "")) != 2 {
			t.Errorf("alice's comment should stay: %+v", api.commentsOn(8, ""))
		}
	})

	t.Run("a marker in someone else's comment is not ours", func(t *testing.T) {
		api, c, _ := s.fixture(t, testToken, RetryPolicy{})
		api.addComment(8, "mallory", marker+"\n\nall runs passed (forged)")
		got, err := c.UpsertComment(ctx, 8, marker, marker+"\n\n1 run failed")
		if err != nil || !got.Created {
			t.Fatalf("upsert: %+v, %v", got, err)
		}
		if m := api.commentsOn(8, "mallory"); len(m) != 1 || !strings.Contains(m[0].Body, "forged") {
			t.Errorf("mallory's comment changed: %+v", m)
		}
		if ours := api.commentsOn(8, api.me); len(ours) != 1 {
			t.Errorf("our comments: %+v", ours)
		}
	})

	t.Run("found on a later page", func(t *testing.T) {
		api, c, _ := s.fixture(t, testToken, RetryPolicy{})
		for i := 0; i < 230; i++ {
			api.addComment(8, "alice", "comment "+strconv.Itoa(i))
		}
		id := api.addComment(8, api.me, marker+"\n\nold")
		got, err := c.UpsertComment(ctx, 8, marker, marker+"\n\nnew")
		if err != nil || got.ID != id || !got.Edited {
			t.Fatalf("upsert: %+v, %v; want comment %d edited", got, err, id)
		}
		if ours := api.commentsOn(8, api.me); len(ours) != 1 {
			t.Errorf("our comments: %d, want 1", len(ours))
		}
	})

	t.Run("rate limited, then served", func(t *testing.T) {
		sl := &noSleep{}
		api, c, _ := s.fixture(t, testToken, RetryPolicy{Sleep: sl.sleep})
		api.fail = func(r *http.Request, n int) (int, http.Header, bool) {
			if n <= 2 {
				return http.StatusTooManyRequests, http.Header{"Retry-After": {"3"}}, false
			}
			return 0, nil, true
		}
		if err := c.SetStatus(ctx, Status{Commit: sha, Context: "expsync", State: StateSuccess}); err != nil {
			t.Fatal(err)
		}
		if len(api.statuses) != 1 || sl.count() != 2 || sl.waits[0] < 3*time.Second {
			t.Errorf("statuses %d, waits %v: want 1 status after two waits of at least 3s", len(api.statuses), sl.waits)
		}
	})

	t.Run("a forge failing forever fails the call, bounded, without the token", func(t *testing.T) {
		sl := &noSleep{}
		api, c, _ := s.fixture(t, testToken, RetryPolicy{Attempts: 4, Sleep: sl.sleep})
		api.fail = func(*http.Request, int) (int, http.Header, bool) { return http.StatusInternalServerError, nil, false }
		err := c.SetStatus(ctx, Status{Commit: sha, Context: "expsync", State: StateSuccess})
		if err == nil {
			t.Fatal("SetStatus succeeded against a failing forge")
		}
		if strings.Contains(err.Error(), testToken) {
			t.Errorf("the error holds the token: %v", err)
		}
		if n := len(api.requestLog()); n != 4 {
			t.Errorf("%d requests, want 4 (the retry bound)", n)
		}
		_, err = c.UpsertComment(ctx, 8, marker, marker+"\n\nbody")
		if err == nil || strings.Contains(err.Error(), testToken) {
			t.Errorf("upsert against a failing forge: %v", err)
		}
	})

	t.Run("a comment created behind a 502 is not created twice", func(t *testing.T) {
		sl := &noSleep{}
		api, c, _ := s.fixture(t, testToken, RetryPolicy{Sleep: sl.sleep})
		posts := 0
		api.fail = func(r *http.Request, n int) (int, http.Header, bool) {
			if r.Method == http.MethodPost && r.URL.EscapedPath() == s.commentsPath {
				posts++
				if posts == 1 {
					return http.StatusBadGateway, nil, true // stored, then the proxy failed
				}
			}
			return 0, nil, true
		}
		got, err := c.UpsertComment(ctx, 8, marker, marker+"\n\nbody")
		if err != nil {
			t.Fatalf("upsert: %v", err)
		}
		if ours := api.commentsOn(8, api.me); len(ours) != 1 || ours[0].ID != got.ID {
			t.Errorf("comments %+v, want exactly the one returned (%+v)", ours, got)
		}
		if posts != 1 {
			t.Errorf("the comment was posted %d times, want 1", posts)
		}
	})

	t.Run("a rate limit reset beyond the wait bound returns at once", func(t *testing.T) {
		sl := &noSleep{}
		api, c, _ := s.fixture(t, testToken, RetryPolicy{Sleep: sl.sleep, MaxWait: time.Minute})
		reset := strconv.FormatInt(time.Now().Add(time.Hour).Unix(), 10)
		api.fail = func(*http.Request, int) (int, http.Header, bool) {
			return http.StatusForbidden, http.Header{"X-Ratelimit-Remaining": {"0"}, "X-Ratelimit-Reset": {reset}, "Ratelimit-Remaining": {"0"}, "Ratelimit-Reset": {reset}}, false
		}
		if err := c.SetStatus(ctx, Status{Commit: sha, Context: "expsync", State: StateSuccess}); err == nil {
			t.Fatal("SetStatus succeeded while rate limited")
		}
		if sl.count() != 0 {
			t.Errorf("waited %v for a reset an hour away", sl.waits)
		}
	})

	t.Run("a 403 that is not a rate limit is not retried", func(t *testing.T) {
		sl := &noSleep{}
		api, c, _ := s.fixture(t, testToken, RetryPolicy{Sleep: sl.sleep})
		api.fail = func(*http.Request, int) (int, http.Header, bool) { return http.StatusForbidden, nil, false }
		if err := c.SetStatus(ctx, Status{Commit: sha, Context: "expsync", State: StateSuccess}); err == nil {
			t.Fatal("SetStatus succeeded on a 403")
		}
		if n := len(api.requestLog()); n != 1 || sl.count() != 0 {
			t.Errorf("%d requests and %d waits for a plain 403, want 1 and 0", n, sl.count())
		}
	})

	t.Run("pull request", func(t *testing.T) {
		api, c, _ := s.fixture(t, testToken, RetryPolicy{})
		api.prs[8] = [2]string{"main", sha}
		pr, err := c.PullRequest(ctx, 8)
		if err != nil || pr.BaseBranch != "main" || pr.HeadCommit != sha || pr.Number != 8 || pr.URL == "" || pr.MergeBase != strings.Repeat("cd", 20) {
			t.Fatalf("pull request 8: %+v, %v", pr, err)
		}
		if _, err := c.PullRequest(ctx, 9); !errors.Is(err, ErrNotFound) {
			t.Errorf("pull request 9: %v, want ErrNotFound", err)
		}
	})
}

func TestFileURLs(t *testing.T) {
	for _, c := range []struct {
		cfg  Config
		want string
	}{
		{Config{Kind: GitHub, Repository: "lab/exps"}, "https://github.com/lab/exps/blob/expsync/results/pr-8/results/a%20b/README.md"},
		{Config{Kind: GitHub, URL: "https://ghe.example/api/v3/", Repository: "lab/exps"}, "https://ghe.example/lab/exps/blob/expsync/results/pr-8/results/a%20b/README.md"},
		{Config{Kind: Gitea, URL: "http://127.0.0.1:3000/", Repository: "lab/exps"}, "http://127.0.0.1:3000/lab/exps/src/branch/expsync/results/pr-8/results/a%20b/README.md"},
		{Config{Kind: GitLab, URL: "https://gitlab.example", Repository: "group/sub/exps"}, "https://gitlab.example/group/sub/exps/-/blob/expsync/results/pr-8/results/a%20b/README.md"},
	} {
		c.cfg.Token = testToken
		cl, err := New(c.cfg)
		if err != nil {
			t.Fatal(err)
		}
		if got := cl.FileURL("expsync/results/pr-8", "results/a b/README.md"); got != c.want {
			t.Errorf("%s: %s, want %s", c.cfg.Kind, got, c.want)
		}
	}
}

func TestNewRefusesCredentialsInTheURL(t *testing.T) {
	_, err := New(Config{Kind: Gitea, URL: "https://bot:" + testToken + "@gitea.example", Repository: "lab/exps", Token: testToken})
	if err == nil || strings.Contains(err.Error(), testToken) {
		t.Errorf("New with a token in the URL: %v", err)
	}
	if _, err := New(Config{Kind: Gitea, URL: "https://gitea.example", Repository: "lab/exps"}); err == nil {
		t.Errorf("New without a token succeeded")
	}
	for _, repo := range []string{"exps", "lab/../exps", "a/b/c", "/"} {
		if _, err := New(Config{Kind: Gitea, URL: "https://gitea.example", Repository: repo, Token: testToken}); err == nil {
			t.Errorf("repository %q accepted", repo)
		}
	}
}

func repoOf(c Client) string {
	switch c := c.(type) {
	case *githubClient:
		return c.owner + "/" + c.name
	case *gitlabClient:
		return c.project
	case *giteaClient:
		return c.owner + "/" + c.name
	}
	return ""
}
