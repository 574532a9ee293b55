package forge

import (
	"context"
	"fmt"
	"net/http"
	"sync"

	gitea "gitea.dev/sdk"
)

// giteaClient talks to Gitea and Forgejo (the same API).
type giteaClient struct {
	kind        Kind
	web         string
	api         *gitea.Client
	owner, name string
	red         redactor
	me          selfCache
}

func newGitea(cfg Config, hc *http.Client, owner, name string, red redactor) (Client, error) {
	// SetGiteaVersion(""): no version request at creation (it would fail
	// New while the forge is down) and no version gates: the calls used
	// here exist since Gitea 1.12.
	api, err := gitea.NewClient(cfg.URL, gitea.SetHTTPClient(hc), gitea.SetToken(cfg.Token),
		gitea.SetGiteaVersion(""), gitea.SetUserAgent(userAgent))
	if err != nil {
		return nil, red.err(fmt.Errorf("forge %s: %w", cfg.Kind, err))
	}
	return &giteaClient{kind: cfg.Kind, web: cfg.webBase(), api: api, owner: owner, name: name, red: red}, nil
}

func (g *giteaClient) Kind() Kind           { return g.kind }
func (g *giteaClient) MaxCommentBytes() int { return giteaMaxCommentBytes }

// FileURL: {web}/{owner}/{repo}/src/branch/{branch}/{path}.
func (g *giteaClient) FileURL(branch, p string) string {
	return g.web + "/" + pathURL(g.owner+"/"+g.name) + "/src/branch/" + pathURL(branch) + "/" + pathURL(p)
}

// giteaMaxCommentBytes: Gitea stores comments as LONGTEXT and documents no
// limit; GitHub's 65,536 characters keep a report readable on every forge.
const giteaMaxCommentBytes = 65536

func (g *giteaClient) SetStatus(ctx context.Context, s Status) error {
	_, _, err := g.api.Repositories.CreateStatus(retryablePost(ctx), g.owner, g.name, s.Commit, gitea.CreateStatusOption{
		State: gitea.StatusState(s.State), TargetURL: s.TargetURL, Context: s.Context,
		Description: clipRunes(s.Description, MaxDescriptionRunes),
	})
	if err != nil {
		return g.red.err(fmt.Errorf("set status %s of commit %s on %s/%s: %w", s.State, s.Commit, g.owner, g.name, err))
	}
	return nil
}

func (g *giteaClient) PullRequest(ctx context.Context, number int) (PullRequest, error) {
	pr, resp, err := g.api.PullRequests.GetPullRequest(ctx, g.owner, g.name, int64(number))
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return PullRequest{}, g.red.err(fmt.Errorf("read pull request %d of %s/%s: %w", number, g.owner, g.name, err))
	}
	out := PullRequest{Number: number, URL: pr.HTMLURL}
	if pr.Base != nil {
		out.BaseBranch = pr.Base.Ref
	}
	if pr.Head != nil {
		out.HeadCommit = pr.Head.Sha
	}
	out.MergeBase = pr.MergeBase
	return out, nil
}

func (g *giteaClient) UpsertComment(ctx context.Context, number int, marker, body string) (Comment, error) {
	c, err := upsert(ctx, g, number, marker, body)
	return c, g.red.err(err)
}

func (g *giteaClient) self(ctx context.Context) (string, error) {
	return g.me.get(func() (string, error) {
		u, _, err := g.api.Users.GetMyUserInfo(ctx)
		if err != nil {
			return "", err
		}
		return u.UserName, nil
	})
}

func (g *giteaClient) list(ctx context.Context, number int) ([]remoteComment, error) {
	var out []remoteComment
	opt := gitea.ListIssueCommentOptions{ListOptions: gitea.ListOptions{Page: 1, PageSize: 50}}
	for page := 0; page < maxCommentPages; page++ {
		cs, resp, err := g.api.Issues.ListIssueComments(ctx, g.owner, g.name, int64(number), opt)
		if err != nil {
			return nil, err
		}
		for _, c := range cs {
			out = append(out, giteaComment(c))
		}
		if resp == nil || resp.NextPage == 0 || resp.NextPage <= opt.Page || len(cs) == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
	return out, nil
}

func (g *giteaClient) create(ctx context.Context, number int, body string) (remoteComment, error) {
	c, _, err := g.api.Issues.CreateIssueComment(ctx, g.owner, g.name, int64(number), gitea.CreateIssueCommentOption{Body: body})
	if err != nil {
		return remoteComment{}, err
	}
	return giteaComment(c), nil
}

func (g *giteaClient) edit(ctx context.Context, _ int, id int64, body string) (remoteComment, error) {
	c, _, err := g.api.Issues.EditIssueComment(ctx, g.owner, g.name, id, gitea.EditIssueCommentOption{Body: body})
	if err != nil {
		return remoteComment{}, err
	}
	return giteaComment(c), nil
}

func giteaComment(c *gitea.Comment) remoteComment {
	rc := remoteComment{id: c.ID, body: c.Body, url: c.HTMLURL}
	if c.Poster != nil {
		rc.author = c.Poster.UserName
	}
	return rc
}

// selfCache remembers who the token belongs to once the forge said so.
type selfCache struct {
	mu    sync.Mutex
	login string
	known bool
}

func (s *selfCache) get(ask func() (string, error)) (string, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.known {
		return s.login, nil
	}
	login, err := ask()
	if err != nil {
		return "", err
	}
	s.login, s.known = login, true
	return login, nil
}

const userAgent = "expsync"
