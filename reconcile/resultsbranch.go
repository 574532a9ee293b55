package reconcile

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/go-git/go-git/v5/plumbing"
)

// Results branches of refs that cannot take commits (pull request heads)
// are named from a template, one branch per source ref, so the results of
// different pull requests are never committed onto each other's code:
//
//	{{number}}  the pull/merge request number: refs/pull/8/head -> 8
//	{{ref}}     the ref without "refs/" and "heads/": refs/pull/8/head -> pull/8/head
//
// A branch created for a ref starts from that ref's commit; later results
// of the same ref are committed on top of it.
var placeholder = regexp.MustCompile(`\{\{\s*([a-z]+)\s*\}\}`)

// requestNumber finds the number of refs/pull/N/... (GitHub, Gitea),
// refs/merge-requests/N/... (GitLab) and refs/changes/../N/... (Gerrit).
var requestNumber = regexp.MustCompile(`^refs/(?:pull|merge-requests|pull-requests)/([0-9]+)/|^refs/changes/[0-9]+/([0-9]+)/`)

// IsResultsBranchTemplate tells whether a configured results branch names
// one branch per ref.
func IsResultsBranchTemplate(branch string) bool { return placeholder.MatchString(branch) }

// ExpandResultsBranch names the results branch of ref from the configured
// template ("" stays ""; a name without placeholders is used as it is).
func ExpandResultsBranch(template, ref string) (string, error) {
	if !IsResultsBranchTemplate(template) {
		return template, nil
	}
	var err error
	out := placeholder.ReplaceAllStringFunc(template, func(m string) string {
		switch name := placeholder.FindStringSubmatch(m)[1]; name {
		case "number":
			sub := requestNumber.FindStringSubmatch(ref)
			if sub == nil {
				err = fmt.Errorf("results branch %q: ref %s has no pull request number; use {{ref}}", template, ref)
				return m
			}
			return sub[1] + sub[2]
		case "ref":
			return strings.TrimPrefix(strings.TrimPrefix(ref, "refs/"), "heads/")
		default:
			err = fmt.Errorf("results branch %q: unknown placeholder {{%s}}; use {{number}} or {{ref}}", template, name)
			return m
		}
	})
	if err != nil {
		return "", err
	}
	if err := plumbing.NewBranchReferenceName(out).Validate(); err != nil {
		return "", fmt.Errorf("results branch %q for %s: %q is not a valid branch name: %w", template, ref, out, err)
	}
	return out, nil
}

// CheckResultsBranch refuses a literal results branch on a pattern that
// matches several refs: every matching pull request would commit its
// results onto the same branch, on top of another's code.
func CheckResultsBranch(pattern, branch string) error {
	if branch == "" || IsResultsBranchTemplate(branch) || !strings.ContainsAny(pattern, "*?[") {
		if _, err := ExpandResultsBranch(branch, "refs/pull/1/head"); err != nil && strings.Contains(err.Error(), "unknown placeholder") {
			return err
		}
		return nil
	}
	return fmt.Errorf("resultsBranch %q is shared by every ref matching %q, so results of different pull requests would be committed onto each other's code; name one branch per ref with a template such as %q or %q",
		branch, pattern, "expsync/results/pr-{{number}}", "expsync/results/{{ref}}")
}

// PullRequestNumber is the number of a pull or merge request's ref
// (refs/pull/8/head, refs/merge-requests/8/head, refs/changes/34/8/1).
func PullRequestNumber(ref string) (int, bool) {
	sub := requestNumber.FindStringSubmatch(ref)
	if sub == nil {
		return 0, false
	}
	n, err := strconv.Atoi(sub[1] + sub[2])
	return n, err == nil && n > 0
}
