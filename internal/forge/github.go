package forge

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-github/v84/github"
)

// githubClient talks to GitHub and GitHub Enterprise Server.
type githubClient struct {
	api         *github.Client
	web         string
	owner, name string
	red         redactor
	me          selfCache
}

func newGitHub(cfg Config, hc *http.Client, owner, name string, red redactor) (Client, error) {
	api := github.NewClient(hc).WithAuthToken(cfg.Token)
	api.UserAgent = userAgent
	if cfg.URL != "" && strings.TrimSuffix(cfg.URL, "/") != "https://api.github.com" {
		var err error
		// WithEnterpriseURLs adds /api/v3/ to a URL without it.
		if api, err = api.WithEnterpriseURLs(cfg.URL, cfg.URL); err != nil {
			return nil, red.err(fmt.Errorf("forge github: URL: %w", err))
		}
	}
	return &githubClient{api: api, web: cfg.webBase(), owner: owner, name: name, red: red}, nil
}

func (g *githubClient) Kind() Kind { return GitHub }

// MaxCommentBytes: GitHub refuses a comment body over 65,536 characters.
func (g *githubClient) MaxCommentBytes() int { return 65536 }

// FileURL: {web}/{owner}/{repo}/blob/{branch}/{path} (GitHub redirects a
// folder's to /tree/).
func (g *githubClient) FileURL(branch, p string) string {
	return g.web + "/" + pathURL(g.owner+"/"+g.name) + "/blob/" + pathURL(branch) + "/" + pathURL(p)
}

func (g *githubClient) SetStatus(ctx context.Context, s Status) error {
	st := github.RepoStatus{State: github.Ptr(string(s.State)), Context: github.Ptr(s.Context),
		Description: github.Ptr(clipRunes(s.Description, MaxDescriptionRunes))}
	if s.TargetURL != "" {
		st.TargetURL = github.Ptr(s.TargetURL)
	}
	if _, _, err := g.api.Repositories.CreateStatus(retryablePost(ctx), g.owner, g.name, s.Commit, st); err != nil {
		return g.red.err(fmt.Errorf("set status %s of commit %s on %s/%s: %w", s.State, s.Commit, g.owner, g.name, err))
	}
	return nil
}

func (g *githubClient) PullRequest(ctx context.Context, number int) (PullRequest, error) {
	pr, resp, err := g.api.PullRequests.Get(ctx, g.owner, g.name, number)
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return PullRequest{}, g.red.err(fmt.Errorf("read pull request %d of %s/%s: %w", number, g.owner, g.name, err))
	}
	out := PullRequest{Number: number, URL: pr.GetHTMLURL(), BaseBranch: pr.GetBase().GetRef(), HeadCommit: pr.GetHead().GetSHA()}
	// The pull request does not carry its merge base; the comparison of
	// its base branch with its head does.
	if out.BaseBranch != "" && out.HeadCommit != "" {
		cmp, _, err := g.api.Repositories.CompareCommits(ctx, g.owner, g.name, out.BaseBranch, out.HeadCommit, &github.ListOptions{PerPage: 1})
		if err != nil {
			return out, g.red.err(fmt.Errorf("merge base of pull request %d of %s/%s: %w", number, g.owner, g.name, err))
		}
		out.MergeBase = cmp.GetMergeBaseCommit().GetSHA()
	}
	return out, nil
}

func (g *githubClient) UpsertComment(ctx context.Context, number int, marker, body string) (Comment, error) {
	c, err := upsert(ctx, g, number, marker, body)
	return c, g.red.err(err)
}

// self: a GitHub App's installation token may not read /user (403); its
// comments are then found by the marker alone.
func (g *githubClient) self(ctx context.Context) (string, error) {
	return g.me.get(func() (string, error) {
		u, resp, err := g.api.Users.Get(ctx, "")
		var rle *github.RateLimitError
		switch {
		case err == nil:
			return u.GetLogin(), nil
		case errors.As(err, &rle):
			return "", err
		case resp != nil && (resp.StatusCode == http.StatusForbidden || resp.StatusCode == http.StatusNotFound):
			return "", nil
		}
		return "", err
	})
}

func (g *githubClient) list(ctx context.Context, number int) ([]remoteComment, error) {
	var out []remoteComment
	opt := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: 100}}
	for page := 0; page < maxCommentPages; page++ {
		cs, resp, err := g.api.Issues.ListComments(ctx, g.owner, g.name, number, opt)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out = append(out, githubComment(c))
		}
		if resp == nil || resp.NextPage == 0 || len(cs) == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
	return out, nil
}

func (g *githubClient) create(ctx context.Context, number int, body string) (remoteComment, error) {
	c, _, err := g.api.Issues.CreateComment(ctx, g.owner, g.name, number, &github.IssueComment{Body: github.Ptr(body)})
	if err != nil {
		return remoteComment{}, err
	}
	return githubComment(c), nil
}

func (g *githubClient) edit(ctx context.Context, _ int, id int64, body string) (remoteComment, error) {
	c, _, err := g.api.Issues.EditComment(ctx, g.owner, g.name, id, &github.IssueComment{Body: github.Ptr(body)})
	if err != nil {
		return remoteComment{}, err
	}
	return githubComment(c), nil
}

func githubComment(c *github.IssueComment) remoteComment {
	return remoteComment{id: c.GetID(), author: c.GetUser().GetLogin(), body: c.GetBody(), url: c.GetHTMLURL()}
}
