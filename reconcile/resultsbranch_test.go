package reconcile

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/attest/reach"
	"github.com/expsync/expsync/gitsource"
)

func TestExpandResultsBranch(t *testing.T) {
	for _, c := range []struct{ template, ref, want, err string }{
		{"", "refs/heads/main", "", ""},
		{"expsync-results", "refs/pull/8/head", "expsync-results", ""},
		{"expsync/results/pr-{{number}}", "refs/pull/8/head", "expsync/results/pr-8", ""},
		{"expsync/results/pr-{{ number }}", "refs/merge-requests/12/head", "expsync/results/pr-12", ""},
		{"review/{{number}}", "refs/changes/34/1234/2", "review/1234", ""},
		{"expsync/results/{{ref}}", "refs/pull/8/head", "expsync/results/pull/8/head", ""},
		{"expsync/results/{{ref}}", "refs/heads/exp/a", "expsync/results/exp/a", ""},
		{"pr-{{number}}", "refs/heads/main", "", "has no pull request number"},
		{"pr-{{pr}}", "refs/pull/8/head", "", "unknown placeholder {{pr}}"},
		{"r/{{ref}}", "refs/tags/v1..2", "", "not a valid branch name"},
	} {
		got, err := ExpandResultsBranch(c.template, c.ref)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("ExpandResultsBranch(%q, %q) = %q, %v; want error %q", c.template, c.ref, got, err, c.err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("ExpandResultsBranch(%q, %q) = %q, %v; want %q", c.template, c.ref, got, err, c.want)
		}
	}
	if err := CheckResultsBranch("refs/pull/*/head", "expsync-results"); err == nil {
		t.Error("a literal results branch shared by a pattern was accepted")
	}
	for _, ok := range [][2]string{{"refs/pull/*/head", "r/pr-{{number}}"}, {"refs/pull/7/head", "r7"}, {"main", ""}} {
		if err := CheckResultsBranch(ok[0], ok[1]); err != nil {
			t.Errorf("CheckResultsBranch(%q, %q): %v", ok[0], ok[1], err)
		}
	}
}

// TestPullRequestsGetTheirOwnResultsBranch: two pull requests
// editing one sweep differently get one results branch each, started from
// their own head: neither lists the other's runs or code, the first one's
// folder does not make the second's run "done", and every run folder of
// each branch verifies with its Git objects reachable from that branch.
func TestPullRequestsGetTheirOwnResultsBranch(t *testing.T) {
	h := newHarness(t)
	marker := filepath.Join(t.TempDir(), "marker")
	h.Commit("base", squareExperiment(marker, "1"))
	for _, pr := range []struct{ n, xs string }{{"7", "1, 666"}, {"8", "1, 888"}} {
		h.Git(h.Peer, "checkout", "-q", "-B", "pr"+pr.n, "main")
		for name, content := range squareExperiment(marker, pr.xs) {
			if err := os.WriteFile(filepath.Join(h.Peer, name), []byte(content), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		h.Git(h.Peer, "commit", "-q", "-am", "PR "+pr.n)
		h.Git(h.Peer, "push", "-q", "origin", "HEAD:refs/pull/"+pr.n+"/head")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	l := h.open(ctx)
	defer l.Close(context.Background())
	src, err := l.Source(gitsource.Repository{
		URL: h.URL(), Auth: &gitsource.Auth{Username: gitUser, Password: gitPassword},
		URLPolicy: gitsource.URLPolicy{AllowHTTP: true},
		Refs: []gitsource.RefPolicy{
			{Pattern: "main", Trusted: true},
			{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "expsync/results/pr-{{number}}"},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	changes, err := src.Poll(ctx)
	if err != nil {
		t.Fatal(err)
	}
	reports := map[string]*Report{}
	for _, ch := range changes {
		if strings.HasPrefix(ch.Ref, "refs/pull/") {
			rep, err := l.ReconcileRef(ctx, src, ch)
			if err != nil {
				t.Fatalf("reconcile %s: %v", ch.Ref, err)
			}
			reports[ch.Ref] = rep
		}
	}
	for _, pr := range []struct{ n, own, other string }{{"7", "666", "888"}, {"8", "888", "666"}} {
		rep := reports["refs/pull/"+pr.n+"/head"]
		if rep == nil || rep.Done != 0 || rep.Executed+rep.Recovered != 2 || len(rep.Commits) == 0 {
			t.Errorf("PR %s: %+v (want 2 runs of its own, none counted done from another PR)", pr.n, rep)
			continue
		}
		clone := filepath.Join(t.TempDir(), "pr"+pr.n)
		h.Git(filepath.Dir(clone), "clone", "-q", "-b", "expsync/results/pr-"+pr.n, h.Srv.HTTPAddressWithCredentials()+"/lab.git", clone)
		spec := string(mustRead(t, filepath.Join(clone, "experiments/square.yaml")))
		readme := string(mustRead(t, filepath.Join(clone, "results/square/README.md")))
		// The sweep line and parameter cells, not bare digits: a run ID or
		// the test's temp folder (in the spec's env) may contain "666".
		if !strings.Contains(spec, "x: [1, "+pr.own+"]") || strings.Contains(spec, "x: [1, "+pr.other+"]") ||
			!strings.Contains(readme, "| "+pr.own+" |") || strings.Contains(readme, "| "+pr.other+" |") {
			t.Errorf("PR %s results branch mixes pull requests:\nspec:\n%s\nREADME:\n%s", pr.n, spec, readme)
		}
		index, err := reach.Open(clone, "HEAD")
		if err != nil {
			t.Fatal(err)
		}
		k, err := attest.LoadVerifierKey(ctx, h.pub)
		if err != nil {
			t.Fatal(err)
		}
		var failed []string
		dirs := runFolders(t, clone, "square")
		for _, dir := range dirs {
			r, _ := attest.VerifyFolder(dir, attest.FolderOptions{Keys: attest.Verifiers{k}, Experiment: "square", ContextTreeWithout: index.TreeWithout})
			if r.Verified != nil {
				reach.CheckReport(r, r.Verified, index, false)
			}
			for _, f := range r.Failures() {
				failed = append(failed, filepath.Base(dir)[:12]+" "+f.Name+": "+f.Detail)
			}
		}
		if diff := cmp.Diff([]string(nil), failed); diff != "" || len(dirs) != 2 {
			t.Errorf("PR %s: %d folders; verify --repo failures (-want +got):\n%s", pr.n, len(dirs), diff)
		}
	}
}
