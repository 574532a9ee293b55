package forge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
)

// githubRoutes are the endpoints of GitHub's REST API (docs.github.com,
// "REST API endpoints for commit statuses / issue comments / pulls /
// users") that the client uses, under GitHub Enterprise's /api/v3 prefix.
func githubRoutes(t *testing.T) []route {
	const repo = `^/api/v3/repos/([^/]+)/([^/]+)`
	return []route{
		{method: "POST", path: regexp.MustCompile(repo + `/statuses/([0-9a-f]{40})$`),
			body: []string{"state"}, optional: []string{"target_url", "description", "context"},
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any) {
				switch body["state"] {
				case "error", "failure", "pending", "success":
				default:
					t.Errorf("status state %v is not one of error, failure, pending, success", body["state"])
				}
				body["sha"] = m[3]
				a.mu.Lock()
				a.statuses = append(a.statuses, body)
				a.mu.Unlock()
				writeJSON(w, http.StatusCreated, map[string]any{"id": 1, "state": body["state"], "context": body["context"]})
			}},
		{method: "GET", path: regexp.MustCompile(repo + `/issues/([0-9]+)/comments$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, _ map[string]any) {
				all := a.commentsOn(mustAtoi(t, m[3]), "")
				items, p, next := page(r, all, 100)
				if next != 0 {
					u := *r.URL
					q := u.Query()
					q.Set("page", fmt.Sprint(next))
					u.RawQuery = q.Encode()
					w.Header().Set("Link", fmt.Sprintf(`<http://%s%s>; rel="next"`, r.Host, u.String()))
				}
				_ = p
				out := []map[string]any{}
				for _, c := range items {
					out = append(out, githubCommentJSON(r, c))
				}
				writeJSON(w, http.StatusOK, out)
			}},
		{method: "POST", path: regexp.MustCompile(repo + `/issues/([0-9]+)/comments$`), body: []string{"body"},
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any) {
				id := a.addComment(mustAtoi(t, m[3]), a.me, body["body"].(string))
				writeJSON(w, http.StatusCreated, githubCommentJSON(r, apiComment{ID: id, Author: a.me, Body: body["body"].(string)}))
			}},
		{method: "PATCH", path: regexp.MustCompile(repo + `/issues/comments/([0-9]+)$`), body: []string{"body"},
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any) {
				editComment(a, w, r, m[3], body, func(c apiComment) any { return githubCommentJSON(r, c) })
			}},
		{method: "GET", path: regexp.MustCompile(repo + `/compare/([^/]+)\.\.\.([0-9a-f]{40})$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, _ map[string]any) {
				writeJSON(w, http.StatusOK, map[string]any{"status": "ahead", "merge_base_commit": map[string]any{"sha": strings.Repeat("cd", 20)},
					"base_commit": map[string]any{"sha": strings.Repeat("ef", 20)}})
			}},
		{method: "GET", path: regexp.MustCompile(`^/api/v3/user$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, _ []string, _ map[string]any) {
				writeJSON(w, http.StatusOK, map[string]any{"login": a.me, "id": 7, "type": "User"})
			}},
		{method: "GET", path: regexp.MustCompile(repo + `/pulls/([0-9]+)$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, _ map[string]any) {
				n := mustAtoi(t, m[3])
				pr, ok := a.prs[n]
				if !ok {
					writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
					return
				}
				writeJSON(w, http.StatusOK, map[string]any{"number": n, "html_url": fmt.Sprintf("https://github.example/%s/%s/pull/%d", m[1], m[2], n),
					"base": map[string]any{"ref": pr[0]}, "head": map[string]any{"sha": pr[1]}})
			}},
	}
}

func githubCommentJSON(r *http.Request, c apiComment) map[string]any {
	return map[string]any{"id": c.ID, "body": c.Body, "user": map[string]any{"login": c.Author},
		"html_url": fmt.Sprintf("https://github.example/o/r/pull/%d#issuecomment-%d", c.Number, c.ID)}
}

func editComment(a *docAPI, w http.ResponseWriter, r *http.Request, idText string, body map[string]any, encode func(apiComment) any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	for i, c := range a.comments {
		if fmt.Sprint(c.ID) == idText {
			if c.Author != a.me {
				writeJSON(w, http.StatusForbidden, map[string]any{"message": "not the author"})
				return
			}
			a.comments[i].Body = body["body"].(string)
			writeJSON(w, http.StatusOK, encode(a.comments[i]))
			return
		}
	}
	writeJSON(w, http.StatusNotFound, map[string]any{"message": "Not Found"})
}

// githubAuth: a token as "Authorization: Bearer" (or the older "token"),
// and an Accept header asking for GitHub's JSON media type.
func githubAuth(token string) func(r *http.Request) bool {
	return func(r *http.Request) bool {
		a := r.Header.Get("Authorization")
		return (a == "Bearer "+token || a == "token "+token) && strings.Contains(r.Header.Get("Accept"), "application/vnd.github")
	}
}

func githubFixture(t *testing.T, token string, retry RetryPolicy) (*docAPI, Client, *httptest.Server) {
	api := newDocAPI(t, token)
	srv := api.server(githubRoutes(t), githubAuth(token))
	c, err := New(Config{Kind: GitHub, URL: srv.URL, Repository: "lab/exps", Token: token, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	return api, c, srv
}

func TestGitHub(t *testing.T) {
	runDocAPISuite(t, docAPISuite{
		fixture: githubFixture,
		status: func(body map[string]any) Status {
			return Status{Commit: body["sha"].(string), State: State(str(body["state"])), Context: str(body["context"]),
				Description: str(body["description"]), TargetURL: str(body["target_url"])}
		},
		commentsPath: "/api/v3/repos/lab/exps/issues/8/comments",
	})
}
