package deploy

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/gitsource"
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
	cfg, err := ParseConfig("/etc/expsync/serve.yaml", []byte(good))
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
	repo, err := repository(cfg.Repositories[0])
	if err != nil || repo.Auth == nil || repo.Auth.BearerToken != "tok-123" || repo.Refs[1].ResultsBranch != "expsync/results/pr-{{number}}" {
		t.Errorf("repository: %+v, %v", repo, err)
	}

	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"unknown field", "key: k\nrepos: []\n", `serve.yaml:2:1: unknown field "repos"; allowed: audit, author, batchInterval,`},
		{"unknown field of a ref, named without Go types", "key: k\nrepositories: [{url: x, refs: [{pattern: main, trust: yes}]}]\n",
			`serve.yaml:2:48: repositories[0].refs[0]: unknown field "trust"; did you mean "trusted"?`},
		{"bad duration", "key: k\ninterval: soon\nrepositories: [{url: x, refs: [{pattern: main}]}]\n", `serve.yaml:2:11: interval: "soon" is not a duration (for example 30s or 5m)`},
		{"wrong kind", "key: k\nconcurrency: many\nrepositories: [{url: x, refs: [{pattern: main}]}]\n", `serve.yaml:2:14: concurrency: must be an integer, got str "many"`},
		{"no repositories", "key: k\n", "at least one repository"},
		{"no refs", "key: k\nrepositories: [{url: https://x}]\n", "serve.yaml:2:16: repositories[0].refs: watch at least one ref"},
		{"no url", "key: k\nrepositories: [{refs: [{pattern: main}]}]\n", "serve.yaml:2:16: repositories[0].url is required"},
		{"one repository twice", "key: k\nrepositories: [{url: https://x/a.git, refs: [{pattern: main, trusted: true}]}, {url: https://x/a.git, refs: [{pattern: dev, trusted: true}]}]\n",
			"repositories[1]: https://x/a.git is repositories[0] already: list all its refs in one entry"},
		{"untrusted without keys ", "key: k\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}, {pattern: 'refs/pull/*/head', resultsBranch: 'r/{{number}}'}]}]\n",
			`repositories[0].refs[1]: pattern "refs/pull/*/head" is not trusted, so its commits run only when signed by an allowed key, and none is configured: add verify: {sshKeyFiles: [FILE]}`},
		{"no key", "repositories: [{url: x, refs: [{pattern: main}]}]\n", "key: a signing key is required"},
		{"shared results branch ", "key: k\nrepositories: [{url: x, refs: [{pattern: 'refs/pull/*/head', trusted: true, resultsBranch: expsync-results}]}]\n",
			`repositories[0].refs[0]: resultsBranch "expsync-results" is shared by every ref matching "refs/pull/*/head"`},
		{"unknown placeholder", "key: k\nrepositories: [{url: x, refs: [{pattern: 'refs/pull/*/head', trusted: true, resultsBranch: 'r/{{pr}}'}]}]\n", "unknown placeholder {{pr}}"},
		{"audit fraction above 1", "key: k\naudit: {fraction: 5}\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}]}]\n", "serve.yaml:2:19: audit.fraction 5: give the share of finished runs"},
		{"audit fraction NaN", "key: k\naudit: {fraction: .nan}\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}]}]\n", "serve.yaml:2:19: audit.fraction: must be a finite number, got .nan"},
		{"audit without a fraction", "key: k\naudit: {perBranch: 2}\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}]}]\n", "audit.fraction 0"},
		{"audit: unknown field", "key: k\naudit: {fracton: 0.1}\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}]}]\n", `serve.yaml:2:9: audit: unknown field "fracton"; did you mean "fraction"?`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv("EXPSYNC_KEY", "")
			_, err := ParseConfig("serve.yaml", []byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "serve.yaml") {
				t.Errorf("error %v, want one naming serve.yaml and containing %q", err, tc.want)
			}
		})
	}
}

func FuzzServeConfig(f *testing.F) {
	f.Add([]byte("key: k\nrepositories: [{url: x, refs: [{pattern: main}]}]\n"))
	f.Add([]byte("a: &a [*a]\n"))
	f.Add([]byte("key: k\naudit: {fraction: 0.05, perBranch: 2}\nrepositories: [{url: x, refs: [{pattern: main, trusted: true}]}]\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := ParseConfig("serve.yaml", data)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "serve.yaml") {
				t.Fatalf("error does not name the file: %v", err)
			}
			return
		}
		if cfg.Key == "" || len(cfg.Repositories) == 0 {
			t.Fatalf("accepted an incomplete configuration: %+v", cfg)
		}
		if a := cfg.Audit; a != nil && (!(a.Fraction > 0 && a.Fraction <= 1) || a.PerBranch < 0) {
			t.Fatalf("accepted audit %+v", *a)
		}
	})
}

// TestServeConfigVerifyFrom: a repository's verify.from (YAML) reaches the
// verification policy, with required.
func TestServeConfigVerifyFrom(t *testing.T) {
	dir := t.TempDir()
	keys := filepath.Join(dir, "allowed")
	if err := os.WriteFile(keys, []byte("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEj6O7m4k0sXDv0sbKqTZrZVnY0g1uXv0Vq2j4Q6j0mN maintainer\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	from := strings.Repeat("ab", 20)
	yaml := "key: k\nrepositories:\n  - url: https://git.example/lab/exps.git\n    refs: [{pattern: main, trusted: true}]\n" +
		"    verify: {required: true, sshKeyFiles: [allowed], from: [" + from + "]}\n"
	cfg, err := ParseConfig(filepath.Join(dir, "serve.yaml"), []byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	repo, err := repository(cfg.Repositories[0])
	if err != nil {
		t.Fatal(err)
	}
	got := []any{repo.Verify.Required, repo.Verify.From, len(repo.Verify.SSHKeys)}
	if diff := cmp.Diff([]any{true, []string{from}, 1}, got); diff != "" {
		t.Errorf("verify policy (required, from, keys): -want +got\n%s", diff)
	}
}

// repository reads the secrets rc names and builds its gitsource.Repository,
// as Deployment.Sources does.
func repository(rc RepositoryConfig) (gitsource.Repository, error) {
	creds, err := rc.Credentials()
	if err != nil {
		return gitsource.Repository{}, err
	}
	return rc.Repository(creds, "")
}
