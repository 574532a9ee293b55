package deploy

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/expsync/expsync/internal/forge"
)

// ForgeConfig is a repository's `forge:` section: where pull requests of
// the repository get their statuses and comment.
//
//	forge: {kind: gitea, url: https://gitea.example, repository: lab/exps, tokenEnv: EXPSYNC_FORGE_TOKEN}
//
// url and repository default to the repository URL's host and path; the
// token is read from the environment variable tokenEnv names (default
// EXPSYNC_FORGE_TOKEN), never from the file.
type ForgeConfig struct {
	// Kind is gitea, forgejo, github or gitlab (required).
	Kind string `yaml:"kind"`
	// URL is the forge's base URL: Gitea's and GitLab's root, GitHub's API
	// (https://api.github.com/, https://HOST/api/v3/ for Enterprise)
	// (default: the repository URL's host).
	URL string `yaml:"url"`
	// WebURL is where the forge's pages are, for links (default: URL;
	// GitHub: https://github.com).
	WebURL string `yaml:"webURL"`
	// Repository is the repository's path on the forge, "owner/name"
	// (default: the repository URL's path).
	Repository string `yaml:"repository"`
	// TokenEnv names the variable holding the forge API token (default
	// EXPSYNC_FORGE_TOKEN); never the token itself.
	TokenEnv string `yaml:"tokenEnv"`
	// Context names the commit status and the comment's marker.
	Context string `yaml:"context"`
}

// DefaultForgeTokenEnv holds the forge API token unless tokenEnv names
// another variable.
const DefaultForgeTokenEnv = "EXPSYNC_FORGE_TOKEN"

// TokenEnv is the variable the forge API token is read from.
func (f *ForgeConfig) TokenEnvName() string {
	if f.TokenEnv == "" {
		return DefaultForgeTokenEnv
	}
	return f.TokenEnv
}

// Check refuses a forge the configuration cannot mean.
func (f *ForgeConfig) Check() error {
	for _, k := range forge.Kinds {
		if forge.Kind(f.Kind) == k {
			return nil
		}
	}
	return fmt.Errorf("forge.kind %q: use one of %v", f.Kind, forge.Kinds)
}

// Client builds the forge client of the repository at gitURL, with the
// token of the environment variable TokenEnvName names (serve).
func (f *ForgeConfig) Client(gitURL string) (forge.Client, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	env := f.TokenEnvName()
	token := os.Getenv(env)
	if token == "" {
		return nil, fmt.Errorf("forge: %s is empty: set the forge's API token in that variable (tokenEnv names another)", env)
	}
	return f.ClientWithToken(gitURL, token)
}

// ClientWithToken builds the forge client of the repository at gitURL with
// token (the controller reads it from a Secret): url and repository
// default to the Git URL's host and path.
func (f *ForgeConfig) ClientWithToken(gitURL, token string) (forge.Client, error) {
	if err := f.Check(); err != nil {
		return nil, err
	}
	if token == "" {
		return nil, errors.New("forge: the API token is empty")
	}
	cfg := forge.Config{Kind: forge.Kind(f.Kind), URL: f.URL, WebURL: f.WebURL, Repository: f.Repository, Token: token}
	if u, err := url.Parse(gitURL); err == nil && (u.Scheme == "http" || u.Scheme == "https") {
		if cfg.URL == "" && cfg.Kind != forge.GitHub {
			cfg.URL = u.Scheme + "://" + u.Host
		}
		if cfg.Repository == "" {
			cfg.Repository = strings.TrimSuffix(strings.Trim(u.Path, "/"), ".git")
		}
	}
	return forge.New(cfg)
}
