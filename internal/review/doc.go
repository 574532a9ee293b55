// Package review reports a pull request's runs where its reviewers look:
// a commit status on the pull request's head commit (pending with counts
// while runs are in flight; success or failure with a link to the results
// when they are done) and one comment per pull request, created once and
// edited in place, holding the `expsync diff` of the pull request against
// the merge base with its target branch.
//
// It is a hook: `expsync serve` calls Progress and Finished at the moments
// of a reconcile (the controller does the same), and the Reviewer posts in
// the background, one worker per pull request that keeps only the newest
// state, retrying with backoff while the forge is down or rate-limiting.
// A forge can delay a status; it never delays a results commit.
//
// Statuses and comments speak only of verified results (package diff
// counts nothing else). A pull request whose commits may not run, whose
// experiment files do not plan, that forges a results folder, or (from an
// untrusted ref) changes nothing but the results folder gets a failure
// status that names what did not verify or why.
package review
