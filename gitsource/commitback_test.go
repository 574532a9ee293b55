package gitsource

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/expsync/expsync/tree"
	"github.com/google/go-cmp/cmp"
)

var bot = Signature{Name: "expsync", Email: "bot@expsync.dev"}

func TestCommitBackWritesOneCommitAndNothingToCommitIsSuccess(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	c1 := p.commit("first", map[string]string{"experiments/pi.yaml": "x", "results/old/run.json": "{}"})
	p.push("main")
	src := newSource(t, srv, "exps")
	ctx := testCtx(t)

	req := CommitRequest{Branch: "main", Base: c1, Message: "results: 2 runs", Author: bot,
		Files: map[string][]byte{
			"results/pi/r1/run.json": []byte(`{"ok":1}`),
			"results/pi/r2/run.json": []byte(`{"ok":2}`),
			"results/old":            nil, // deletes the folder
		}}
	res, err := src.CommitBack(ctx, req, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Pushed || res.NothingToCommit || res.Attempts != 1 || res.Parent != c1 {
		t.Fatalf("result = %+v", res)
	}
	got := reclone(t, srv.peerURL("exps"), "main")
	if d := cmp.Diff([]string{res.Commit, c1}, got.log(t)); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	want := map[string]string{"experiments/pi.yaml": "x", "results/pi/r1/run.json": `{"ok":1}`, "results/pi/r2/run.json": `{"ok":2}`}
	if d := cmp.Diff(want, got.files(t)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
	if msg := runGit(t, got.dir, "log", "-1", "--format=%an <%ae>|%cn|%s"); msg != "expsync <bot@expsync.dev>|expsync|results: 2 runs" {
		t.Errorf("commit metadata = %q", msg)
	}
	if out := runGit(t, got.dir, "fsck", "--strict"); strings.Contains(out, "error") {
		t.Errorf("git fsck: %s", out)
	}

	// The same files again: nothing to commit, nothing pushed, a success.
	req.Base = res.Commit
	again, err := src.CommitBack(ctx, req, nil)
	if err != nil || !again.NothingToCommit || again.Pushed || again.Commit != res.Commit {
		t.Fatalf("second identical commit-back = %+v, %v", again, err)
	}
	if h := reclone(t, srv.peerURL("exps"), "main").head(t); h != res.Commit {
		t.Errorf("head moved to %s after nothing to commit", h)
	}
}

func TestCommitBackToNewResultsBranchFromPullRequest(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	pr := p.commit("pr", map[string]string{"experiments/pi.yaml": "x"})
	p.push("main")
	runGit(t, srv.barePath("exps"), "update-ref", "refs/pull/3/head", pr)
	src := newSource(t, srv, "exps", RefPolicy{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "expsync/pr-results"})
	branch, err := src.Repository().ResultsBranchFor("refs/pull/3/head")
	if err != nil {
		t.Fatal(err)
	}
	res, err := src.CommitBack(testCtx(t), CommitRequest{Branch: branch, Create: true, StartFrom: "refs/pull/3/head",
		Files: map[string][]byte{"results/r/run.json": []byte("{}")}, Message: "results for #3", Author: bot}, nil)
	if err != nil || !res.Pushed || res.Parent != pr {
		t.Fatalf("commit to a new results branch = %+v, %v", res, err)
	}
	got := reclone(t, srv.peerURL("exps"), "expsync/pr-results")
	if d := cmp.Diff([]string{res.Commit, pr}, got.log(t)); d != "" {
		t.Errorf("history (-want +got):\n%s", d)
	}
	if d := cmp.Diff(map[string]string{"experiments/pi.yaml": "x", "results/r/run.json": "{}"}, got.files(t)); d != "" {
		t.Errorf("files (-want +got):\n%s", d)
	}
}

func TestCommitBackRefusesBadPaths(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	src := newSource(t, srv, "exps")
	for _, p := range []string{"../x", "/etc/passwd", "a/../../b", ".git/config", "a/.GIT/hooks/x", ""} {
		_, err := src.CommitBack(testCtx(t), CommitRequest{Branch: "main", Files: map[string][]byte{p: []byte("x")},
			Message: "m", Author: bot}, nil)
		if err == nil {
			t.Errorf("path %q was accepted", p)
		}
	}
	if src.Stats().Pushes != 0 || src.Stats().Lists != 0 {
		t.Errorf("bad paths reached the server: %+v", src.Stats())
	}
}

// summaryMerge is what expsync's own merge does, reduced: run folders are
// added (first writer wins) and summary.txt is regenerated from the merged
// tree's folders.
func summaryMerge(base tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
	out := map[string][]byte{}
	folders := map[string]bool{}
	entries, err := base.ReadDir("runs")
	if err != nil && !errors.Is(err, tree.ErrNotExist) {
		return nil, err
	}
	for _, e := range entries {
		folders[e.Name] = true
	}
	for p, data := range ours {
		if p == "summary.txt" {
			continue
		}
		if _, err := base.Stat(p); err == nil {
			continue // first writer wins
		}
		out[p] = data
		folders[strings.Split(p, "/")[1]] = true
	}
	out["summary.txt"] = []byte(summaryOf(folders))
	return out, nil
}

func summaryOf(folders map[string]bool) string {
	names := sortedKeys(folders)
	return strings.Join(names, "\n") + "\n"
}

func TestConcurrentCommitBackLosesNothing(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("start", map[string]string{"summary.txt": "\n"})
	p.push("main")
	ctx := testCtx(t)

	const writers = 10
	var wg sync.WaitGroup
	results := make([]CommitResult, writers)
	errs := make([]error, writers)
	start := make(chan struct{})
	for i := 0; i < writers; i++ {
		// One Source (and cache) per writer, as separate processes would be.
		src := newSource(t, srv, "exps")
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			<-start
			folder := fmt.Sprintf("w%02d", i)
			files := map[string][]byte{
				"runs/" + folder + "/run.json": []byte(fmt.Sprintf(`{"writer":%d}`, i)),
				"summary.txt":                  []byte(folder + "\n"), // stale on purpose: the merge regenerates it
			}
			results[i], errs[i] = src.CommitBack(ctx, CommitRequest{Branch: "main", Files: files, Base: "unknown",
				Message: "results " + folder, Author: bot,
				Retry: RetryPolicy{MaxAttempts: 30, BaseDelay: 20 * time.Millisecond, MaxDelay: 300 * time.Millisecond}},
				summaryMerge)
		}(i)
	}
	// The git CLI pushes its own commits at the same time.
	peerDone := make(chan error, 1)
	go func() {
		<-start
		for j := 0; j < 3; j++ {
			runGit(t, p.dir, "pull", "-q", "--rebase", "origin", "main")
			p.commit(fmt.Sprintf("peer %d", j), map[string]string{fmt.Sprintf("peer/%d.txt", j): "peer"})
			if _, err := gitErr(p.dir, nil, "push", "-q", "origin", "main"); err != nil {
				j-- // lost the race; pull and retry
				continue
			}
		}
		peerDone <- nil
	}()
	close(start)
	wg.Wait()
	<-peerDone

	attempts := 0
	for i := range results {
		if errs[i] != nil {
			t.Fatalf("writer %d: %v", i, errs[i])
		}
		if !results[i].Pushed {
			t.Fatalf("writer %d did not push: %+v", i, results[i])
		}
		attempts += results[i].Attempts
	}
	got := reclone(t, srv.peerURL("exps"), "main")
	files := got.files(t)
	folders := map[string]bool{}
	for i := 0; i < writers; i++ {
		folder := fmt.Sprintf("w%02d", i)
		folders[folder] = true
		if files["runs/"+folder+"/run.json"] != fmt.Sprintf(`{"writer":%d}`, i) {
			t.Errorf("folder %s lost: %q", folder, files["runs/"+folder+"/run.json"])
		}
	}
	for j := 0; j < 3; j++ {
		if files[fmt.Sprintf("peer/%d.txt", j)] != "peer" {
			t.Errorf("the git CLI peer's commit %d was lost", j)
		}
	}
	if files["summary.txt"] != summaryOf(folders) {
		t.Errorf("summary = %q, want all %d folders", files["summary.txt"], writers)
	}
	// Every writer's commit is on the branch exactly once.
	log := got.log(t)
	var ours []string
	for _, r := range results {
		ours = append(ours, r.Commit)
	}
	count := map[string]int{}
	for _, h := range log {
		count[h]++
	}
	for i, h := range ours {
		if count[h] != 1 {
			t.Errorf("writer %d's commit %s appears %d times in the history", i, h, count[h])
		}
	}
	sort.Strings(ours)
	t.Logf("%d writers + git CLI peer: %d push attempts in total, history of %d commits", writers, attempts, len(log))
}

func TestCommitBackGivesUpAfterBoundedRetries(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("start", map[string]string{"a": "a"})
	p.push("main")
	src := newSource(t, srv, "exps")
	n := 0
	// A merge that lets another writer win every race.
	merge := func(base tree.Reader, ours map[string][]byte) (map[string][]byte, error) {
		n++
		p.commit(fmt.Sprintf("interloper %d", n), map[string]string{"b": fmt.Sprint(n)})
		p.push("main")
		return ours, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	res, err := src.CommitBack(ctx, CommitRequest{Branch: "main", Base: "x", Files: map[string][]byte{"r": []byte("1")},
		Message: "m", Author: bot, Retry: RetryPolicy{MaxAttempts: 3, BaseDelay: time.Millisecond}}, merge)
	if !errors.Is(err, ErrRetriesExhausted) || res.Attempts != 3 || res.Pushed {
		t.Fatalf("result = %+v, err = %v; want ErrRetriesExhausted after 3 attempts", res, err)
	}
}

// A push the server refuses (a hook, a protected branch) is an error at
// once, not a race to retry.
func TestCommitBackReportsARejectedPush(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("start", map[string]string{"a": "a"})
	p.push("main")
	hook := filepath.Join(srv.barePath("exps"), "hooks", "update")
	if err := os.WriteFile(hook, []byte("#!/bin/sh\necho 'branch is protected' >&2\nexit 1\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	src := newSource(t, srv, "exps")
	res, err := src.CommitBack(testCtx(t), CommitRequest{Branch: "main", Files: map[string][]byte{"r": []byte("1")},
		Message: "m", Author: bot, Retry: RetryPolicy{MaxAttempts: 5, BaseDelay: time.Millisecond}}, nil)
	if !errors.Is(err, ErrPushRejected) || res.Attempts != 1 || res.Pushed {
		t.Fatalf("result = %+v, err = %v; want ErrPushRejected after one attempt", res, err)
	}
	t.Log(err)
}

func TestCommitMessageTemplate(t *testing.T) {
	srv := newServer(t)
	srv.newRepo("exps")
	p := newPeer(t, srv.peerURL("exps"))
	p.commit("start", map[string]string{"a": "a"})
	p.push("main")
	src := newSource(t, srv, "exps")
	res, err := src.CommitBack(testCtx(t), CommitRequest{Branch: "main",
		Files:   map[string][]byte{"results/x/run.json": []byte("{}"), "results/y/run.json": []byte("{}")},
		Message: "results: {{.Files}} files on {{.Branch}}\n\n{{range .Paths}}{{.}}\n{{end}}", Author: bot}, nil)
	if err != nil {
		t.Fatal(err)
	}
	got := reclone(t, srv.peerURL("exps"), "main")
	if msg := runGit(t, got.dir, "log", "-1", "--format=%B", res.Commit); msg != "results: 2 files on main\n\nresults/x/run.json\nresults/y/run.json" {
		t.Errorf("message = %q", msg)
	}
	_, err = src.CommitBack(testCtx(t), CommitRequest{Branch: "main", Files: map[string][]byte{"z": nil},
		Message: "{{.Nope}}", Author: bot}, nil)
	if err == nil || !strings.Contains(err.Error(), "commit message template") {
		t.Errorf("bad template: err = %v", err)
	}
}
