package gitsource

import (
	"context"

	"github.com/go-git/go-git/v5/plumbing"
)

// DefaultBranchOf is DefaultBranch for a caller that has no Source yet —
// because the default branch is what decides the refs to watch (`expsync
// run` without --branch). It checks repo's URL policy first, then asks with
// repo's credentials and limits; repo.Refs and repo.Verify are not needed,
// and nothing is written to any cache.
func DefaultBranchOf(ctx context.Context, repo Repository) (string, error) {
	if err := ValidateURL(repo.URL, repo.URLPolicy); err != nil {
		return "", err
	}
	s := &Source{repo: repo, limits: repo.Limits.withDefaults(), redacted: RedactURL(repo.URL),
		observed: map[string]string{}, cacheSem: make(chan struct{}, 1)}
	return s.DefaultBranch(ctx)
}

// DefaultBranch asks the server for its default branch (what HEAD points
// to), with the same credentials and network bounds as Poll: one ref
// listing. Servers that do not advertise HEAD's target get the branch
// whose head equals HEAD's commit, preferring main and master.
func (s *Source) DefaultBranch(ctx context.Context) (string, error) {
	const op = "find the default branch"
	ctx, cancel := s.limits.withTimeout(ctx)
	defer cancel()
	refs, err := s.listRefs(ctx)
	if err != nil {
		return "", s.wrap(op, err)
	}
	var headHash plumbing.Hash
	branches := map[string]plumbing.Hash{}
	for _, r := range refs {
		switch {
		case r.Name() == plumbing.HEAD && r.Type() == plumbing.SymbolicReference:
			return r.Target().Short(), nil
		case r.Name() == plumbing.HEAD:
			headHash = r.Hash()
		case r.Name().IsBranch():
			branches[r.Name().Short()] = r.Hash()
		}
	}
	for _, name := range []string{"main", "master"} {
		if h, ok := branches[name]; ok && (headHash.IsZero() || h == headHash) {
			return name, nil
		}
	}
	var match string
	for name, h := range branches {
		if h == headHash && (match == "" || name < match) {
			match = name // the same answer every time
		}
	}
	if match == "" {
		return "", s.newError(op, ErrRefNotFound, "the server names no default branch: pass the branch explicitly")
	}
	return match, nil
}
