package deploy

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/internal/yamldecode"
	"github.com/expsync/expsync/reconcile"
)

// LoadConfig reads serve's configuration file; relative paths in it are
// relative to the file's folder.
func LoadConfig(file string) (*Config, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return ParseConfig(file, data)
}

// maxConfigAliases bounds the YAML aliases of a configuration: a file of a
// few aliases to aliases expands without end, and a configuration has no
// use for them beyond sharing a block or two.
const maxConfigAliases = 64

// ParseConfig reads a configuration: every problem is reported as
// file:line:col and the field it concerns, the way experiment files are
// (internal/yamldecode); relative paths in it are relative to file's folder.
func ParseConfig(file string, data []byte) (*Config, error) {
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s: larger than 1 MiB; this is not a configuration file", file)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var cfg Config
	c := &configCheck{file: file, pos: map[string]yamldecode.Pos{}}
	if len(doc.Content) > 0 {
		root := doc.Content[0]
		if n := countAliases(root); n > maxConfigAliases {
			return nil, fmt.Errorf("%s: %d YAML aliases; a configuration may use at most %d", file, n, maxConfigAliases)
		}
		d := yamldecode.Decoder{File: file, Errorf: c.add, Seen: func(path string, at yamldecode.Pos) { c.pos[path] = at },
			Scalars: map[reflect.Type]func(*yaml.Node) (reflect.Value, error){durationType: decodeDuration}}
		d.Decode(root, reflect.ValueOf(&cfg).Elem(), "")
		if err := c.err(); err != nil {
			return nil, err
		}
	}
	cfg.defaults(filepath.Dir(file))
	if err := cfg.check(c); err != nil {
		return nil, err
	}
	return &cfg, nil
}

// defaults fills what the file leaves out and makes paths absolute
// (relative to base, the file's folder).
func (cfg *Config) defaults(base string) {
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
			return p
		}
		return filepath.Join(base, p)
	}
	if cfg.Store == "" {
		cfg.Store = DefaultStoreDir()
	}
	if cfg.State == "" {
		cfg.State = DefaultStateDir()
	}
	if cfg.Key == "" {
		cfg.Key = os.Getenv("EXPSYNC_KEY")
	}
	cfg.Store, cfg.State, cfg.Key = rel(cfg.Store), rel(cfg.State), rel(cfg.Key)
	cfg.CommitSigningKey, cfg.SecretsFile = rel(cfg.CommitSigningKey), rel(cfg.SecretsFile)
	for i := range cfg.TrustedKeys {
		cfg.TrustedKeys[i] = rel(cfg.TrustedKeys[i])
	}
	if cfg.Interval.Duration == 0 {
		cfg.Interval.Duration = 30 * time.Second
	}
	if cfg.BatchInterval.Duration == 0 {
		cfg.BatchInterval.Duration = 10 * time.Second
	}
	for _, r := range cfg.Repositories {
		if r.Verify != nil {
			for j := range r.Verify.PGPKeyFiles {
				r.Verify.PGPKeyFiles[j] = rel(r.Verify.PGPKeyFiles[j])
			}
			for j := range r.Verify.SSHKeyFiles {
				r.Verify.SSHKeyFiles[j] = rel(r.Verify.SSHKeyFiles[j])
			}
		}
		if r.Auth != nil {
			r.Auth.SSHKeyFile, r.Auth.KnownHostsFile = rel(r.Auth.SSHKeyFile), rel(r.Auth.KnownHostsFile)
		}
	}
}

// check refuses a configuration that cannot work, naming the field and
// where the file sets it.
func (cfg *Config) check(c *configCheck) error {
	if cfg.Key == "" {
		return c.at("key", "key: a signing key is required (make one with `expsync keygen`)")
	}
	if cfg.GPUs < 0 || cfg.Concurrency < 0 {
		field := "gpus"
		if cfg.GPUs >= 0 {
			field = "concurrency"
		}
		return c.at(field, "gpus %d, concurrency %d: give numbers of 0 or more", cfg.GPUs, cfg.Concurrency)
	}
	if a := cfg.Audit; a != nil {
		if !(a.Fraction > 0 && a.Fraction <= 1) { // NaN too
			return c.at("audit.fraction", "audit.fraction %v: give the share of finished runs to re-execute, above 0 and at most 1 (0.05: one run in twenty)", a.Fraction)
		}
		if a.PerBranch < 0 {
			return c.at("audit.perBranch", "audit.perBranch %d: give the runs reproduced per branch and reconcile (default 1)", a.PerBranch)
		}
	}
	if len(cfg.Repositories) == 0 {
		return c.at("repositories", "repositories: at least one repository is required")
	}
	seen := map[string]int{}
	for i, r := range cfg.Repositories {
		entry := fmt.Sprintf("repositories[%d]", i)
		if r.URL == "" {
			return c.at(entry, "%s.url is required", entry)
		}
		// Two entries would poll and fetch into one Git cache at once and
		// reconcile each ref twice.
		if j, ok := seen[r.URL]; ok {
			return c.at(entry+".url", "%s: %s is repositories[%d] already: list all its refs in one entry", entry, r.URL, j)
		}
		seen[r.URL] = i
		if len(r.Refs) == 0 {
			return c.at(entry, "%s.refs: watch at least one ref, for example {pattern: main, trusted: true}", entry)
		}
		for k, ref := range r.Refs {
			field := fmt.Sprintf("%s.refs[%d]", entry, k)
			if err := reconcile.CheckResultsBranch(ref.Pattern, ref.ResultsBranch); err != nil {
				return c.at(field, "%s: %v", field, err)
			}
			if !ref.Trusted && (r.Verify == nil || len(r.Verify.PGPKeyFiles)+len(r.Verify.SSHKeyFiles) == 0) {
				return c.at(field, "%s: pattern %q is not trusted, so its commits run only when signed by an allowed key, and none is configured: add verify: {sshKeyFiles: [FILE]} or verify: {pgpKeyFiles: [FILE]} to the repository, or set trusted: true",
					field, ref.Pattern)
			}
		}
		if r.Forge != nil {
			if err := r.Forge.Check(); err != nil {
				return c.at(entry+".forge.kind", "%s: %v", entry, err)
			}
		}
	}
	return nil
}

// configCheck collects a configuration's problems with their positions.
type configCheck struct {
	file string
	pos  map[string]yamldecode.Pos
	errs []string
}

func (c *configCheck) add(at yamldecode.Pos, msg string) {
	if len(c.errs) < 20 {
		c.errs = append(c.errs, fmt.Sprintf("%s:%d:%d: %s", at.File, at.Line, at.Column, msg))
	}
}

func (c *configCheck) err() error {
	if len(c.errs) == 0 {
		return nil
	}
	return errors.New(strings.Join(c.errs, "\n"))
}

// at is a problem of the field at path: file:line:col when the file sets
// it (or the closest enclosing field it sets), the file alone otherwise.
func (c *configCheck) at(path, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	for p := path; ; {
		if at, ok := c.pos[p]; ok && p != "" {
			return fmt.Errorf("%s:%d:%d: %s", at.File, at.Line, at.Column, msg)
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			return fmt.Errorf("%s: %s", c.file, msg)
		}
		p = p[:i]
	}
}

var durationType = reflect.TypeOf(Duration{})

// decodeDuration reads a duration ("30s", "5m").
func decodeDuration(n *yaml.Node) (reflect.Value, error) {
	if n.Kind != yaml.ScalarNode {
		return reflect.Value{}, fmt.Errorf("%s is not a duration (for example 30s or 5m)", yamldecode.Describe(n))
	}
	d, err := time.ParseDuration(n.Value)
	if err != nil {
		return reflect.Value{}, fmt.Errorf("%q is not a duration (for example 30s or 5m)", n.Value)
	}
	return reflect.ValueOf(Duration{d}), nil
}

// countAliases counts alias nodes without following them.
func countAliases(n *yaml.Node) int {
	if n.Kind == yaml.AliasNode {
		return 1
	}
	total := 0
	for _, c := range n.Content {
		total += countAliases(c)
	}
	return total
}

// Credentials are the values of the variables the repositories' auth
// names for passwords and tokens: a run can read expsync's environment, so
// they are redacted from runs (runner.Options.Redact) whatever the
// variables are called.
func (cfg *Config) Credentials() []string {
	var out []string
	for _, r := range cfg.Repositories {
		if r.Forge != nil {
			// The forge's token too: a run could read it from expsync's
			// environment and print it into its log or outputs.
			if v := os.Getenv(r.Forge.TokenEnvName()); v != "" {
				out = append(out, v)
			}
		}
		if r.Auth == nil {
			continue
		}
		for _, name := range []string{r.Auth.PasswordEnv, r.Auth.TokenEnv} {
			if v := os.Getenv(name); name != "" && v != "" {
				out = append(out, v)
			}
		}
	}
	return out
}

// Credentials are a repository's secrets, however they were read: the
// environment variables and files a RepositoryConfig names (serve), the
// EXPSYNC_GIT_* variables and --commit-key files (run), or Secrets (the
// controller).
type Credentials struct {
	Auth *gitsource.Auth
	// CommitKeys are the keys allowed to sign commits: an armored PGP public
	// key or authorized_keys lines each (see CommitVerifyPolicy).
	CommitKeys []string
}

// Secrets lists the values no log line, event or status may show: the
// password, bearer token, SSH key and its passphrase (see
// logging.Redacting).
func (c Credentials) Secrets() []string {
	if c.Auth == nil {
		return nil
	}
	return []string{c.Auth.Password, c.Auth.BearerToken, c.Auth.SSHPassphrase, string(c.Auth.SSHPrivateKey)}
}

// Credentials reads the secrets the entry names: environment variables and
// files.
func (rc RepositoryConfig) Credentials() (Credentials, error) {
	auth, err := rc.Auth.auth()
	if err != nil {
		return Credentials{}, err
	}
	creds := Credentials{Auth: auth}
	if v := rc.Verify; v != nil {
		files := append(append([]string(nil), v.PGPKeyFiles...), v.SSHKeyFiles...)
		if creds.CommitKeys, err = ReadCommitKeys(files); err != nil {
			return Credentials{}, fmt.Errorf("verify: %w", err)
		}
	}
	return creds, nil
}

// Repository turns one entry and its credentials into a
// gitsource.Repository. ownKey, the authorized_keys line of the key results
// commits are signed with, is allowed to sign commits when the repository
// verifies them (CommitSigner.OwnKey).
func (rc RepositoryConfig) Repository(creds Credentials, ownKey string) (gitsource.Repository, error) {
	repo := gitsource.Repository{URL: rc.URL, URLPolicy: gitsource.URLPolicy{AllowHTTP: rc.AllowHTTP}, Auth: creds.Auth}
	for _, r := range rc.Refs {
		repo.Refs = append(repo.Refs, gitsource.RefPolicy{Pattern: r.Pattern, Trusted: r.Trusted, ResultsBranch: r.ResultsBranch})
	}
	if v := rc.Verify; v != nil {
		p, err := CommitVerifyPolicy(creds.CommitKeys)
		if err != nil {
			return repo, fmt.Errorf("verify: %w", err)
		}
		p.Required = v.Required
		p.From = v.From
		if ownKey != "" {
			p.OwnKeys = append(p.OwnKeys, ownKey)
		}
		repo.Verify = p
	}
	return repo, nil
}

// Options are the deployment options the configuration sets; the caller
// adds what it prints (Events) and the commit signer it loaded.
func (cfg *Config) Options() Options {
	opts := Options{
		StoreDir: cfg.Store, StateDir: cfg.State, Key: cfg.Key, TrustedKeys: cfg.TrustedKeys, BuilderID: cfg.BuilderID,
		BatchInterval: cfg.BatchInterval.Duration,
		Local: LocalOptions{Concurrency: cfg.Concurrency, GPUs: cfg.GPUs,
			// A run can read expsync's environment: the repositories'
			// credentials are redacted from runs like EXPSYNC_*
			// credentials, whatever their variables are called.
			Runner: runner.Options{Redact: cfg.Credentials(), SecretsFile: cfg.SecretsFile}},
	}
	if cfg.Author != nil {
		opts.Author = gitsource.Signature{Name: cfg.Author.Name, Email: cfg.Author.Email}
	}
	return opts
}

// Sources opens every repository of the configuration, with the secrets
// each names; ownKey as for RepositoryConfig.Repository.
func (d *Deployment) Sources(repos []RepositoryConfig, ownKey string) ([]*gitsource.Source, error) {
	var sources []*gitsource.Source
	for i, rc := range repos {
		creds, err := rc.Credentials()
		if err != nil {
			return nil, fmt.Errorf("repositories[%d]: %w", i, err)
		}
		repo, err := rc.Repository(creds, ownKey)
		if err != nil {
			return nil, fmt.Errorf("repositories[%d]: %w", i, err)
		}
		src, err := d.Source(repo)
		if err != nil {
			return nil, fmt.Errorf("repositories[%d]: %w", i, err)
		}
		sources = append(sources, src)
	}
	return sources, nil
}
