package controller

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gitea "gitea.dev/sdk"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/go-logr/logr/funcr"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/internal/giteatest"
)

// lossSweep is an experiment whose loss is factor*x; each run sleeps 6 s
// so a pull request's 3 runs (2 at a time) outlast the reviewer's spacing
// of pending statuses (10 s) and one is seen pending.
func lossSweep(xs, factor string) map[string]string {
	return map[string]string{
		"experiments/loss.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: loss
spec:
  image: ` + busybox + `
  command: ["sh", "loss.sh", "{{params.x}}"]
  context: code/loss
  sweep:
    matrix:
      x: [` + xs + `]
  metrics: out/metrics.json
  resources: {cpu: 100m, memory: 16Mi}
  timeout: 1m
`,
		"code/loss/loss.sh": "set -e\nsleep 6\nmkdir -p out\nprintf '{\"loss\": %d}\\n' $((" + factor + " * $1)) > out/metrics.json\n",
	}
}

// logBuffer collects the controller's log lines.
type logBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *logBuffer) write(prefix, args string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	fmt.Fprintf(&l.b, "%s %s\n", prefix, args)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// eventually polls cond until it holds; the timeout only catches hangs.
func eventually(t *testing.T, what string, timeout time.Duration, cond func() bool, log func() string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s; controller log:\n%s", timeout, what, log())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestForgeStatusesAndCommentOnGitea: an ExperimentRepository naming a
// forge (spec.forge: a real Gitea, its API token from a Secret) gets what
// serve gives a pull request, through the same code (internal/review's
// hook): while the forge is down (a proxy answering 500/429 and echoing
// the token), the pull request's results are committed all the same and
// only its status waits; once the forge answers, the status is success
// with a link to the results branch and one comment holds the diff
// against the merge base. A second push shows a pending status with
// counts, then success, and the same comment edited in place with the new
// diff. The token is in no event, no status and no log line.
func TestForgeStatusesAndCommentOnGitea(t *testing.T) {
	g := giteatest.Start(t)
	f := newFixture(t, "forge")
	ctx := context.Background()
	api := g.API(t)
	owner := g.User
	if _, _, err := api.Repositories.CreateRepo(ctx, gitea.CreateRepoOption{Name: "exps", DefaultBranch: "main"}); err != nil {
		t.Fatalf("create repository: %v", err)
	}
	peer := t.TempDir()
	giteatest.Git(t, peer, "init", "-q", "-b", "main")
	commit := func(branch, msg string, files map[string]string) string {
		t.Helper()
		for name, content := range files {
			full := filepath.Join(peer, filepath.FromSlash(name))
			if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		giteatest.Git(t, peer, "add", "-A")
		giteatest.Git(t, peer, "commit", "-q", "-m", msg)
		giteatest.Git(t, peer, "push", "-q", g.RepoURL(owner, "exps"), "HEAD:refs/heads/"+branch)
		return giteatest.Git(t, peer, "rev-parse", "HEAD")
	}
	experiments := commit("main", "loss", lossSweep("1, 2", "1"))
	g.WaitForBranch(t, owner, "exps", "main", experiments)

	for name, data := range map[string]map[string][]byte{
		"gitea-git": {"username": []byte(g.User), "password": []byte(g.Password)},
		// A token file's trailing newline is not part of the token.
		"forge-token": {"token": []byte(g.Token + "\n")},
	} {
		if err := f.c.Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: name}, Data: data}); err != nil {
			t.Fatal(err)
		}
	}
	flaky := giteatest.NewFlakyProxy(t, g.URL)
	flaky.Down.Store(true)
	obj := &v1alpha1.ExperimentRepository{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: f.key.Name},
		Spec: v1alpha1.ExperimentRepositorySpec{
			URL: g.PlainRepoURL(owner, "exps"), AllowHTTP: true, SecretRef: &meta.LocalObjectReference{Name: "gitea-git"},
			Refs: []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true},
				{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "expsync/results/pr-{{number}}"}},
			Interval:    &metav1.Duration{Duration: 10 * time.Second},
			Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
			Store:       v1alpha1.Store{ClaimName: "store"},
			Forge: &v1alpha1.Forge{Kind: "gitea", BaseURL: flaky.URL, Repository: owner + "/exps",
				SecretRef: meta.LocalObjectReference{Name: "forge-token"}},
		}}
	if err := f.c.Create(ctx, obj); err != nil {
		t.Fatal(err)
	}
	var logs logBuffer
	logger := funcr.New(logs.write, funcr.Options{Verbosity: 1})
	startControllerWith(t, apiServer(t), f.state, f.execs, controllerConfig{namespace: f.key.Namespace, logger: &logger})
	poll := func() { // instead of waiting out the interval
		f.update(func(o *v1alpha1.ExperimentRepository) {
			o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
		})
	}
	statuses := func(commit string) []*gitea.Status {
		list, _, err := api.Repositories.ListStatuses(ctx, owner, "exps", commit, gitea.ListStatusesOption{})
		if err != nil {
			return nil
		}
		return list
	}
	final := func(commit string) *gitea.Status {
		for _, s := range statuses(commit) {
			if s.Context == "expsync" && (s.State == gitea.StatusSuccess || s.State == gitea.StatusFailure) {
				return s
			}
		}
		return nil
	}
	comments := func() []*gitea.Comment {
		cs, _, err := api.Issues.ListIssueComments(ctx, owner, "exps", 1, gitea.ListIssueCommentOptions{})
		if err != nil {
			t.Fatal(err)
		}
		var ours []*gitea.Comment
		for _, c := range cs {
			if strings.Contains(c.Body, forge.Marker("expsync")) {
				ours = append(ours, c)
			}
		}
		return ours
	}

	eventually(t, "main's results of both runs", 4*time.Minute, func() bool {
		head := g.BranchHead(t, owner, "exps", "main")
		return head != "" && head != experiments && g.Folders(t, owner, "exps", head, "results/loss") == 2
	}, logs.String)

	// A pull request off the experiments commit: the loss doubles, one
	// more point. The forge is down.
	giteatest.Git(t, peer, "checkout", "-q", "-b", "feature")
	head1 := commit("feature", "double the loss, add x=3", lossSweep("1, 2, 3", "2"))
	g.OpenPullRequest(t, owner, "exps", "feature", "main", "double the loss")
	poll()
	eventually(t, "the pull request's results while the forge is down", 4*time.Minute, func() bool {
		return g.Folders(t, owner, "exps", "expsync/results/pr-1", "results/loss") == 3
	}, logs.String)
	// Until the report's bounded retries give up and say so: a retry in
	// flight when the forge comes back would succeed unseen.
	eventually(t, "the controller to log that the forge failed", 4*time.Minute, func() bool {
		return flaky.Failures.Load() > 0 && strings.Contains(logs.String(), "report not posted")
	}, logs.String)
	if s := statuses(head1); len(s) != 0 {
		t.Errorf("statuses reached the forge while it was down: %+v", s[0])
	}
	flaky.Down.Store(false)

	var st *gitea.Status
	eventually(t, "the final status once the forge answers", 4*time.Minute, func() bool { st = final(head1); return st != nil }, logs.String)
	if st.State != gitea.StatusSuccess || !strings.Contains(st.Description, "3 runs succeeded; 2 changed, 1 added, 0 removed against main") {
		t.Errorf("final status: %s %q", st.State, st.Description)
	}
	if !strings.HasSuffix(st.TargetURL, "/"+owner+"/exps/src/branch/expsync/results/pr-1/results/README.md") {
		t.Errorf("the status links %q, not the results branch's README", st.TargetURL)
	}
	first := comments()
	if len(first) != 1 {
		t.Fatalf("%d comments with expsync's marker, want 1", len(first))
	}
	for _, want := range []string{"2 changed, 1 added", "1 → 2 (+1, +100.00%)", "2 → 4 (+2, +100.00%)"} {
		if !strings.Contains(first[0].Body, want) {
			t.Errorf("the comment lacks %q:\n%s", want, first[0].Body)
		}
	}

	// A second push, the forge up: pending with counts, then success, the
	// same comment with the new diff.
	head2 := commit("feature", "triple the loss", lossSweep("1, 2, 3", "3"))
	poll()
	eventually(t, "the final status of the second push", 4*time.Minute, func() bool { st = final(head2); return st != nil }, logs.String)
	if st.State != gitea.StatusSuccess {
		t.Errorf("final status of the second push: %s %q", st.State, st.Description)
	}
	sawPending := false
	for _, s := range statuses(head2) {
		sawPending = sawPending || (s.State == gitea.StatusPending && strings.Contains(s.Description, "of 3 runs done"))
	}
	if !sawPending {
		t.Errorf("no pending status with counts on the second push: %+v", statuses(head2))
	}
	again := comments()
	if len(again) != 1 || again[0].ID != first[0].ID {
		t.Fatalf("after the second push: %d comments (want the same one, %d, edited)", len(again), first[0].ID)
	}
	if !strings.Contains(again[0].Body, "1 → 3 (+2, +200.00%)") {
		t.Errorf("the comment does not show the new diff:\n%s", again[0].Body)
	}

	// The token: in no event, no status, no log line (the proxy echoed it
	// in every error page).
	var events corev1.EventList
	if err := f.c.List(ctx, &events, client.InNamespace(f.key.Namespace)); err != nil {
		t.Fatal(err)
	}
	for _, e := range events.Items {
		if strings.Contains(e.Message, g.Token) || strings.Contains(fmt.Sprint(e.Annotations), g.Token) {
			t.Errorf("event %s shows the forge token", e.Reason)
		}
	}
	if err := f.c.Get(ctx, f.key, obj); err != nil {
		t.Fatal(err)
	}
	status, _ := json.Marshal(obj.Status)
	if strings.Contains(string(status), g.Token) {
		t.Errorf("the status shows the forge token")
	}
	log := logs.String()
	if strings.Contains(log, g.Token) {
		t.Errorf("the controller's log shows the forge token")
	}
	for _, want := range []string{"report not posted", "the forge answers again", "pull request 1: 3 runs succeeded"} {
		if !strings.Contains(log, want) {
			t.Errorf("the controller's log lacks %q:\n%s", want, log)
		}
	}
}
