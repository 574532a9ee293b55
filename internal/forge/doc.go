// Package forge reports on pull requests where reviewers already look: a
// commit status on the pull request's head commit and one comment per pull
// request, created once and then edited in place.
//
// Three forges are supported through their maintained client libraries:
// Gitea and Forgejo (gitea.dev/sdk), GitHub (google/go-github) and GitLab
// (gitlab-org/api/client-go). Every client shares the same rules:
//
//   - The token is given by the caller (from the environment for serve, a
//     Secret for the controller) and never appears in an error: every error
//     is passed through a redactor, and a URL carrying credentials is refused.
//   - Requests are retried with backoff when the forge is rate-limiting (429,
//     GitHub's 403 with an exhausted rate limit) or failing (5xx, a dropped
//     connection), honouring Retry-After and rate-limit reset headers, a
//     bounded number of times: a forge that is down makes a call fail after a
//     while, and the caller (see package review) tries again later.
//   - Creating a comment is never retried blindly: a 5xx may hide a comment
//     that was created, so the comment is looked up again by its marker
//     before another is made. "One comment per pull request" survives
//     restarts because the comment is found again by a hidden marker (an
//     HTML comment, invisible when rendered) and, where the forge says who
//     the token belongs to, by its author.
package forge
