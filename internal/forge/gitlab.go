package forge

import (
	"context"
	"fmt"
	"net/http"
	"strings"

	gitlab "gitlab.com/gitlab-org/api/client-go/v2"
)

// gitlabClient talks to GitLab: statuses on commits, notes on merge
// requests (a pull request's number is the merge request's IID).
type gitlabClient struct {
	api     *gitlab.Client
	web     string
	project string // group/subgroup/project; the library escapes it
	red     redactor
	me      selfCache
}

func newGitLab(cfg Config, hc *http.Client, red redactor) (Client, error) {
	// WithoutRetries: retries are the forge package's own (see retry.go),
	// which never repeat a note's creation; the library's would, on a 5xx.
	api, err := gitlab.NewClient(cfg.Token, gitlab.WithBaseURL(cfg.URL), gitlab.WithHTTPClient(hc), gitlab.WithoutRetries())
	if err != nil {
		return nil, red.err(fmt.Errorf("forge gitlab: %w", err))
	}
	api.UserAgent = userAgent
	return &gitlabClient{api: api, web: cfg.webBase(), project: strings.Trim(cfg.Repository, "/"), red: red}, nil
}

func (g *gitlabClient) Kind() Kind { return GitLab }

// MaxCommentBytes: GitLab accepts notes of up to 1,000,000 characters.
func (g *gitlabClient) MaxCommentBytes() int { return 1000000 }

// FileURL: {web}/{project}/-/blob/{branch}/{path}.
func (g *gitlabClient) FileURL(branch, p string) string {
	return g.web + "/" + pathURL(g.project) + "/-/blob/" + pathURL(branch) + "/" + pathURL(p)
}

// gitlabState maps a status to GitLab's pipeline states.
func gitlabState(s State) gitlab.BuildStateValue {
	switch s {
	case StatePending:
		return gitlab.Pending
	case StateSuccess:
		return gitlab.Success
	default:
		return gitlab.Failed
	}
}

func (g *gitlabClient) SetStatus(ctx context.Context, s Status) error {
	opt := &gitlab.SetCommitStatusOptions{State: gitlabState(s.State), Name: gitlab.Ptr(s.Context),
		Description: gitlab.Ptr(clipRunes(s.Description, MaxDescriptionRunes))}
	if s.TargetURL != "" {
		opt.TargetURL = gitlab.Ptr(s.TargetURL)
	}
	if _, _, err := g.api.Commits.SetCommitStatus(g.project, s.Commit, opt, gitlab.WithContext(retryablePost(ctx))); err != nil {
		return g.red.err(fmt.Errorf("set status %s of commit %s on %s: %w", s.State, s.Commit, g.project, err))
	}
	return nil
}

func (g *gitlabClient) PullRequest(ctx context.Context, number int) (PullRequest, error) {
	mr, resp, err := g.api.MergeRequests.GetMergeRequest(g.project, int64(number), nil, gitlab.WithContext(ctx))
	if err != nil {
		if resp != nil && resp.StatusCode == http.StatusNotFound {
			err = fmt.Errorf("%w: %w", ErrNotFound, err)
		}
		return PullRequest{}, g.red.err(fmt.Errorf("read merge request !%d of %s: %w", number, g.project, err))
	}
	// diff_refs.base_sha is the merge base GitLab diffs the request against.
	return PullRequest{Number: number, URL: mr.WebURL, BaseBranch: mr.TargetBranch, HeadCommit: mr.SHA, MergeBase: mr.DiffRefs.BaseSha}, nil
}

func (g *gitlabClient) UpsertComment(ctx context.Context, number int, marker, body string) (Comment, error) {
	c, err := upsert(ctx, g, number, marker, body)
	return c, g.red.err(err)
}

func (g *gitlabClient) self(ctx context.Context) (string, error) {
	return g.me.get(func() (string, error) {
		u, _, err := g.api.Users.CurrentUser(gitlab.WithContext(ctx))
		if err != nil {
			return "", err
		}
		return u.Username, nil
	})
}

func (g *gitlabClient) list(ctx context.Context, number int) ([]remoteComment, error) {
	var out []remoteComment
	opt := &gitlab.ListMergeRequestNotesOptions{ListOptions: gitlab.ListOptions{PerPage: 100, Page: 1},
		OrderBy: gitlab.Ptr("created_at"), Sort: gitlab.Ptr("asc")}
	for page := 0; page < maxCommentPages; page++ {
		notes, resp, err := g.api.Notes.ListMergeRequestNotes(g.project, int64(number), opt, gitlab.WithContext(ctx))
		if err != nil {
			return nil, err
		}
		for _, n := range notes {
			if n.System {
				continue // "added 1 commit": GitLab's own notes
			}
			out = append(out, remoteComment{id: n.ID, author: n.Author.Username, body: n.Body})
		}
		if resp == nil || resp.NextPage == 0 || len(notes) == 0 {
			return out, nil
		}
		opt.Page = resp.NextPage
	}
	return out, nil
}

func (g *gitlabClient) create(ctx context.Context, number int, body string) (remoteComment, error) {
	n, _, err := g.api.Notes.CreateMergeRequestNote(g.project, int64(number), &gitlab.CreateMergeRequestNoteOptions{Body: gitlab.Ptr(body)}, gitlab.WithContext(ctx))
	if err != nil {
		return remoteComment{}, err
	}
	return remoteComment{id: n.ID, author: n.Author.Username, body: n.Body}, nil
}

func (g *gitlabClient) edit(ctx context.Context, number int, id int64, body string) (remoteComment, error) {
	n, _, err := g.api.Notes.UpdateMergeRequestNote(g.project, int64(number), id, &gitlab.UpdateMergeRequestNoteOptions{Body: gitlab.Ptr(body)}, gitlab.WithContext(ctx))
	if err != nil {
		return remoteComment{}, err
	}
	return remoteComment{id: n.ID, author: n.Author.Username, body: n.Body}, nil
}
