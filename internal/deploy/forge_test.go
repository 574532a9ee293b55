package deploy

import (
	"strings"
	"testing"

	"github.com/expsync/expsync/internal/forge"
)

// TestServeConfigForge: a repository's forge section; the token comes from
// the variable it names (its value is redacted from runs like the Git
// credentials), the URL and repository default from the Git URL, and a
// missing token or an unknown kind stops serve at start.
func TestServeConfigForge(t *testing.T) {
	cfg, err := ParseConfig("/etc/expsync/serve.yaml", []byte(`key: k
repositories:
  - url: https://git.example/lab/exps.git
    refs: [{pattern: main, trusted: true}]
    forge: {kind: gitea, tokenEnv: LAB_FORGE_TOKEN}
`))
	if err != nil {
		t.Fatal(err)
	}
	f := cfg.Repositories[0].Forge
	if _, err := f.Client(cfg.Repositories[0].URL); err == nil || !strings.Contains(err.Error(), "LAB_FORGE_TOKEN is empty") {
		t.Errorf("no token: %v", err)
	}
	t.Setenv("LAB_FORGE_TOKEN", "forge-tok-9")
	c, err := f.Client(cfg.Repositories[0].URL)
	if err != nil || c.Kind() != forge.Gitea {
		t.Fatalf("client: %v", err)
	}
	if got := c.FileURL("main", "results/README.md"); got != "https://git.example/lab/exps/src/branch/main/results/README.md" {
		t.Errorf("defaults from the Git URL: %s", got)
	}
	found := false
	for _, v := range cfg.Credentials() {
		found = found || v == "forge-tok-9"
	}
	if !found {
		t.Errorf("the forge token is not among the values redacted from runs")
	}
	if _, err := ParseConfig("s.yaml", []byte("key: k\nrepositories:\n  - url: https://g/x.git\n    refs: [{pattern: main, trusted: true}]\n    forge: {kind: gitea, token: abc}\n")); err == nil || !strings.Contains(err.Error(), `s.yaml:5:26: repositories[0].forge: unknown field "token"`) {
		t.Errorf("a token in the file: %v", err)
	}
	if _, err := ParseConfig("s.yaml", []byte("key: k\nrepositories:\n  - url: https://g/x.git\n    refs: [{pattern: main, trusted: true}]\n    forge: {kind: bitbucket}\n")); err == nil || !strings.Contains(err.Error(), `forge.kind "bitbucket"`) {
		t.Errorf("unknown kind: %v", err)
	}
}
