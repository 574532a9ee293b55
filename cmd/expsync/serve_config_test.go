package main

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseServeConfig(t *testing.T) {
	good := `store: store
state: /var/lib/expsync
key: keys/expsync.key
interval: 45s
secretsFile: secrets.yaml
repositories:
  - url: https://git.example/lab/x.git
    auth: {tokenEnv: LAB_TOKEN}
    refs:
      - {pattern: main, trusted: true}
      - {pattern: "refs/pull/*/head", trusted: true, resultsBranch: "expsync/results/pr-{{number}}"}
`
	cfg, err := parseServeConfig("/etc/expsync/serve.yaml", []byte(good))
	if err != nil {
		t.Fatal(err)
	}
	got := []any{cfg.Store, cfg.State, cfg.Key, cfg.Interval.Duration, cfg.BatchInterval.Duration, len(cfg.Repositories[0].Refs)}
	want := []any{"/etc/expsync/store", "/var/lib/expsync", "/etc/expsync/keys/expsync.key", 45 * time.Second, 10 * time.Second, 2}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if cfg.SecretsFile != "/etc/expsync/secrets.yaml" {
		t.Errorf("secretsFile %q, want it relative to the configuration's folder", cfg.SecretsFile)
	}
	t.Setenv("LAB_TOKEN", "tok-123")
	repo, err := cfg.Repositories[0].repository()
	if err != nil || repo.Auth == nil || repo.Auth.BearerToken != "tok-123" || repo.Refs[1].ResultsBranch != "expsync/results/pr-{{number}}" {
		t.Errorf("repository: %+v, %v", repo, err)
	}

	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "key: k\nrepos: []\n", "field repos not found"},
		{"unknown field of a ref, named without Go types", "key: k\nrepositories: [{url: x, refs: [{pattern: main, trust: yes}]}]\n",
			"line 2: field trust not found in a ref (see `expsync serve --help`)"},
		{"bad duration", "key: k\ninterval: soon\nrepositories: [{url: x, refs: [{pattern: main}]}]\n", "line 2: \"soon\" is not a duration"},
		{"no repositories", "key: k\n", "at least one repository"},
		{"no refs", "key: k\nrepositories: [{url: https://x}]\n", "repositories[0].refs"},
		{"no url", "key: k\nrepositories: [{refs: [{pattern: main}]}]\n", "repositories[0].url is required"},
		{"one repository twice", "key: k\nrepositories: [{url: https://x/a.git, refs: [{pattern: main, trusted: true}]}, {url: https://x/a.git, refs: [{pattern: dev, trusted: true}]}]\n",
			"repositories[1]: https://x/a.git is repositories[0] already: list all its refs in one entry"},
		{"untrusted without keys (QA F17)", "key: k\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}, {pattern: 'refs/pull/*/head', resultsBranch: 'r/{{number}}'}]}]\n",
			`repositories[0].refs[1]: pattern "refs/pull/*/head" is not trusted, so its commits run only when signed by an allowed key, and none is configured: add verify: {sshKeyFiles: [FILE]}`},
		{"no key", "repositories: [{url: x, refs: [{pattern: main}]}]\n", "key: a signing key is required"},
		{"shared results branch (QA F17)", "key: k\nrepositories: [{url: x, refs: [{pattern: 'refs/pull/*/head', trusted: true, resultsBranch: expsync-results}]}]\n",
			`repositories[0].refs[0]: resultsBranch "expsync-results" is shared by every ref matching "refs/pull/*/head"`},
		{"unknown placeholder", "key: k\nrepositories: [{url: x, refs: [{pattern: 'refs/pull/*/head', trusted: true, resultsBranch: 'r/{{pr}}'}]}]\n", "unknown placeholder {{pr}}"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EXPSYNC_KEY", "")
			_, err := parseServeConfig("serve.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "serve.yaml") {
				t.Errorf("error %v, want one naming serve.yaml and containing %q", err, tc.want)
			}
		})
	}
}

func FuzzServeConfig(f *testing.F) {
	f.Add([]byte("key: k\nrepositories: [{url: x, refs: [{pattern: main}]}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := parseServeConfig("serve.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "serve.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg.Key == "" || len(cfg.Repositories) == 0 {
			t.Fatalf("accepted an incomplete configuration: %+v", cfg)
		}
	})
}
