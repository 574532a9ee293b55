package forge

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// gitlabRoutes are the endpoints of GitLab's REST API v4 (docs.gitlab.com:
// "Commits API: set the pipeline status of a commit", "Notes API: merge
// requests", "Merge requests API", "Users API") that the client uses. A
// project is named by its URL-encoded full path.
func gitlabRoutes(t *testing.T) []route {
	const project = `^/api/v4/projects/(group%2Fsub%2Fexps)`
	return []route{
		{method: "POST", path: regexp.MustCompile(project + `/statuses/([0-9a-f]{40})$`),
			body: []string{"state"}, optional: []string{"ref", "name", "context", "target_url", "description", "coverage", "pipeline_id"},
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any) {
				switch body["state"] {
				case "pending", "running", "success", "failed", "canceled", "skipped":
				default:
					t.Errorf("status state %v is not one of GitLab's", body["state"])
				}
				body["sha"] = m[2]
				a.mu.Lock()
				a.statuses = append(a.statuses, body)
				a.mu.Unlock()
				writeJSON(w, http.StatusCreated, map[string]any{"id": 1, "status": body["state"], "name": body["name"]})
			}},
		{method: "GET", path: regexp.MustCompile(project + `/merge_requests/([0-9]+)/notes$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, _ map[string]any) {
				all := a.commentsOn(mustAtoi(t, m[2]), "")
				// A system note ("added 1 commit") is listed too.
				notes := []map[string]any{{"id": 1, "body": "added 1 commit", "system": true, "author": map[string]any{"username": a.me}}}
				for _, c := range all {
					notes = append(notes, gitlabNoteJSON(c))
				}
				items, p, next := page(r, notes, 100)
				w.Header().Set("X-Page", strconv.Itoa(p))
				if next != 0 {
					w.Header().Set("X-Next-Page", strconv.Itoa(next))
				} else {
					w.Header().Set("X-Next-Page", "")
				}
				writeJSON(w, http.StatusOK, items)
			}},
		{method: "POST", path: regexp.MustCompile(project + `/merge_requests/([0-9]+)/notes$`), body: []string{"body"}, optional: []string{"internal", "merge_request_diff_head_sha", "created_at"},
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any) {
				n := mustAtoi(t, m[2])
				id := a.addComment(n, a.me, body["body"].(string))
				writeJSON(w, http.StatusCreated, gitlabNoteJSON(apiComment{ID: id, Number: n, Author: a.me, Body: body["body"].(string)}))
			}},
		{method: "PUT", path: regexp.MustCompile(project + `/merge_requests/([0-9]+)/notes/([0-9]+)$`), body: []string{"body"},
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, body map[string]any) {
				editComment(a, w, r, m[3], body, func(c apiComment) any { return gitlabNoteJSON(c) })
			}},
		{method: "GET", path: regexp.MustCompile(`^/api/v4/user$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, _ []string, _ map[string]any) {
				writeJSON(w, http.StatusOK, map[string]any{"id": 7, "username": a.me})
			}},
		{method: "GET", path: regexp.MustCompile(project + `/merge_requests/([0-9]+)$`),
			handle: func(a *docAPI, w http.ResponseWriter, r *http.Request, m []string, _ map[string]any) {
				n := mustAtoi(t, m[2])
				pr, ok := a.prs[n]
				if !ok {
					writeJSON(w, http.StatusNotFound, map[string]any{"message": "404 Not found"})
					return
				}
				writeJSON(w, http.StatusOK, map[string]any{"iid": n, "web_url": fmt.Sprintf("https://gitlab.example/group/sub/exps/-/merge_requests/%d", n),
					"target_branch": pr[0], "sha": pr[1], "diff_refs": map[string]any{"base_sha": strings.Repeat("cd", 20), "head_sha": pr[1], "start_sha": strings.Repeat("ef", 20)}})
			}},
	}
}

func gitlabNoteJSON(c apiComment) map[string]any {
	return map[string]any{"id": c.ID, "body": c.Body, "system": false, "noteable_iid": c.Number,
		"author": map[string]any{"username": c.Author}}
}

// gitlabAuth: a personal or project access token in the PRIVATE-TOKEN header.
func gitlabAuth(token string) func(r *http.Request) bool {
	return func(r *http.Request) bool { return r.Header.Get("Private-Token") == token }
}

func gitlabFixture(t *testing.T, token string, retry RetryPolicy) (*docAPI, Client, *httptest.Server) {
	api := newDocAPI(t, token)
	srv := api.server(gitlabRoutes(t), gitlabAuth(token))
	c, err := New(Config{Kind: GitLab, URL: srv.URL, Repository: "group/sub/exps", Token: token, Retry: retry})
	if err != nil {
		t.Fatal(err)
	}
	return api, c, srv
}

func TestGitLab(t *testing.T) {
	runDocAPISuite(t, docAPISuite{
		fixture: gitlabFixture,
		status: func(body map[string]any) Status {
			st := State(str(body["state"]))
			if st == "failed" {
				st = StateFailure
			}
			return Status{Commit: body["sha"].(string), State: st, Context: str(body["name"]),
				Description: str(body["description"]), TargetURL: str(body["target_url"])}
		},
		commentsPath: "/api/v4/projects/group%2Fsub%2Fexps/merge_requests/8/notes",
	})
}
