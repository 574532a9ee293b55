package review

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/diff"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/tree"
)

// TestDecideFailsAnUntrustedPullRequestThatOnlyEditsResults: a pull request
// from an untrusted ref whose only change is in results/ (a README edited to
// say "all green", a genuine folder copied from elsewhere: nothing there
// fails to verify) gets a failure saying results are not committed by pull
// requests; the same change from a trusted ref, or with code changed beside
// it, does not. The status names no unverified folder: there is none.
func TestDecideFailsAnUntrustedPullRequestThatOnlyEditsResults(t *testing.T) {
	base := map[string]string{
		"experiments/pi/pi.yaml":   "spec",
		"results/pi/README.md":     "| run | status |\n| a | Failed |\n",
		"results/pi/aaaa/run.json": "{}",
	}
	with := func(changes map[string]string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for k, v := range changes {
			m[k] = v
		}
		return m
	}
	const baseCommit, headCommit = "1111111111111111111111111111111111111111", "2222222222222222222222222222222222222222"
	for _, c := range []struct {
		name    string
		head    map[string]string
		trusted bool
		want    forge.State
	}{
		{"untrusted, README edited only", with(map[string]string{"results/pi/README.md": "| run | status |\n| a | Succeeded |\n"}), false, forge.StateFailure},
		{"trusted, README edited only", with(map[string]string{"results/pi/README.md": "all green"}), true, forge.StateSuccess},
		{"untrusted, code and README", with(map[string]string{"results/pi/README.md": "all green", "experiments/pi/pi.yaml": "new spec"}), false, forge.StateSuccess},
		{"untrusted, code only", with(map[string]string{"experiments/pi/pi.yaml": "new spec"}), false, forge.StateSuccess},
	} {
		t.Run(c.name, func(t *testing.T) {
			trees := func(_ context.Context, ref, commit string) (tree.Reader, func(), error) {
				switch commit {
				case baseCommit:
					return tree.MemoryOf(base), func() {}, nil
				case headCommit:
					return tree.MemoryOf(c.head), func() {}, nil
				}
				return nil, nil, fmt.Errorf("no commit %q of %s", commit, ref)
			}
			r := &Reviewer{trees: trees}
			pr := PullRequest{Number: 8, Ref: "refs/pull/8/head", Commit: headCommit, Trusted: c.trusted}
			fpr := forge.PullRequest{Number: 8, BaseBranch: "main", MergeBase: baseCommit, HeadCommit: headCommit}
			rep := &diff.Report{Head: diff.SideInfo{ResultsRoot: "results"}}
			state, desc := r.decide(context.Background(), pr, fpr, rep, Outcome{})
			if state != c.want {
				t.Fatalf("state %s (%q), want %s", state, desc, c.want)
			}
			if c.want == forge.StateFailure && !strings.Contains(desc, "changes nothing but results/") {
				t.Errorf("description %q does not say the pull request changes only results/", desc)
			}
		})
	}
}
