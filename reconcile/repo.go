package reconcile

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"

	"github.com/expsync/expsync/gitsource"
)

// RepoTarget is where `expsync run REPO` reads commits and pushes results.
type RepoTarget struct {
	// URL is a remote URL or the absolute path of a bare repository.
	URL string
	// Branch is the branch to reconcile (short name).
	Branch string
	// Via says how REPO was read ("remote URL", "bare repository", "origin
	// of the clone at ...").
	Via string
}

var scpLikeURL = regexp.MustCompile(`^(?:[A-Za-z0-9._~-]+@)?[A-Za-z0-9.-]+:[^/\\]`)

// ResolveRepository turns `expsync run`'s REPO argument into a URL: a remote
// URL is used as it is; a local bare repository by its path; a clone by its
// origin remote — never the clone itself, so expsync never pushes into a
// checked-out branch. branch "" picks a bare repository's HEAD or the
// clone's current branch; otherwise Branch stays "" and WithDefaultBranch
// asks the server. Nothing here uses the network.
func ResolveRepository(arg, branch string) (RepoTarget, error) {
	if arg == "" {
		arg = "."
	}
	if strings.Contains(arg, "://") || (scpLikeURL.MatchString(arg) && !fileExists(arg)) {
		return RepoTarget{URL: arg, Branch: branch, Via: "remote URL"}, nil
	}
	abs, err := filepath.Abs(arg)
	if err != nil {
		return RepoTarget{}, err
	}
	if _, err := os.Stat(abs); err != nil {
		return RepoTarget{}, fmt.Errorf("repository %s: %w", arg, err)
	}
	repo, err := git.PlainOpenWithOptions(abs, &git.PlainOpenOptions{DetectDotGit: !isBareDir(abs)})
	if err != nil {
		return RepoTarget{}, fmt.Errorf("%s is neither a Git repository nor a URL: %w", arg, err)
	}
	cfg, err := repo.Config()
	if err != nil {
		return RepoTarget{}, fmt.Errorf("read the configuration of %s: %w", arg, err)
	}
	if cfg.Core.IsBare {
		t := RepoTarget{URL: abs, Branch: branch, Via: "bare repository"}
		if t.Branch == "" {
			if head, err := repo.Reference(plumbing.HEAD, false); err == nil && head.Type() == plumbing.SymbolicReference {
				t.Branch = head.Target().Short()
			}
		}
		return t, nil
	}
	origin, ok := cfg.Remotes["origin"]
	if !ok || len(origin.URLs) == 0 {
		return RepoTarget{}, fmt.Errorf("%s is a clone without an origin remote; expsync never pushes into a checked-out branch: "+
			"pass the URL of its remote, or a bare repository (git clone --bare)", arg)
	}
	url := origin.URLs[0]
	root := abs
	if wt, err := repo.Worktree(); err == nil {
		root = wt.Filesystem.Root()
	}
	if !strings.Contains(url, "://") && !scpLikeURL.MatchString(url) && !filepath.IsAbs(url) {
		url = filepath.Join(root, url) // a relative path is relative to the clone
	}
	t := RepoTarget{URL: url, Branch: branch, Via: "origin of the clone at " + root}
	if t.Branch == "" {
		if head, err := repo.Head(); err == nil && head.Name().IsBranch() {
			t.Branch = head.Name().Short()
		}
	}
	return t, nil
}

// WithDefaultBranch returns t with its branch: t.Branch when set, else the
// server's default branch (what HEAD points to), asked through gitsource
// with repo's credentials, URL policy and limits — the same bounds as the
// rest of the run, so a stalled server times out and a refusal is reported
// like a poll's, with no secret in the error. repo.URL is replaced by
// t.URL; repo.Refs is not needed.
func WithDefaultBranch(ctx context.Context, t RepoTarget, repo gitsource.Repository) (RepoTarget, error) {
	if t.Branch != "" {
		return t, nil
	}
	repo.URL = t.URL
	branch, err := gitsource.DefaultBranchOf(ctx, repo)
	switch {
	case errors.Is(err, gitsource.ErrEmptyRepository):
		return t, fmt.Errorf("%w: push a first commit, then run again", err)
	case errors.Is(err, gitsource.ErrRefNotFound):
		return t, fmt.Errorf("%w (--branch)", err)
	case err != nil:
		return t, err
	}
	t.Branch = branch
	return t, nil
}

// isBareDir tells a bare repository by its layout (HEAD, objects/, refs/
// at the top and no .git).
func isBareDir(p string) bool {
	return fileExists(filepath.Join(p, "HEAD")) && fileExists(filepath.Join(p, "objects")) &&
		fileExists(filepath.Join(p, "refs")) && !fileExists(filepath.Join(p, ".git"))
}

func fileExists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
