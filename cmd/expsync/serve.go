package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/reconcile"
)

// serveConfig is the YAML file of `expsync serve --config FILE`.
type serveConfig struct {
	// Store, State and Key as for `expsync run`.
	Store string `yaml:"store"`
	State string `yaml:"state"`
	Key   string `yaml:"key"`
	// TrustedKeys are further public keys whose results count as done.
	TrustedKeys []string `yaml:"trustedKeys"`
	BuilderID   string   `yaml:"builderID"`
	// Interval between polls; BatchInterval between results commits.
	Interval      duration `yaml:"interval"`
	BatchInterval duration `yaml:"batchInterval"`
	// Concurrency bounds the runs at once (0: CPU and memory requests).
	Concurrency int `yaml:"concurrency"`
	// GPUs the runs' requests may add up to (0: runs requesting one are
	// refused).
	GPUs int `yaml:"gpus"`
	// CommitSigningKey signs results commits (SSH or armored PGP private
	// key file; passphrase from EXPSYNC_COMMIT_KEY_PASSPHRASE).
	CommitSigningKey string             `yaml:"commitSigningKey"`
	Author           *authorConfig      `yaml:"author"`
	Repositories     []repositoryConfig `yaml:"repositories"`
	// SecretsFile is a YAML file {secret: {key: value}} for secretRef
	// variables not set as EXPSYNC_SECRET_<NAME>_<KEY>.
	SecretsFile string `yaml:"secretsFile"`
}

type authorConfig struct {
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

type repositoryConfig struct {
	URL       string        `yaml:"url"`
	AllowHTTP bool          `yaml:"allowHTTP"`
	Auth      *authConfig   `yaml:"auth"`
	Refs      []refConfig   `yaml:"refs"`
	Verify    *verifyConfig `yaml:"verify"`
	// Forge posts statuses and a comment on pull requests (serve_review.go).
	Forge *forgeConfig `yaml:"forge"`
}

type refConfig struct {
	Pattern       string `yaml:"pattern"`
	Trusted       bool   `yaml:"trusted"`
	ResultsBranch string `yaml:"resultsBranch"`
}

type verifyConfig struct {
	// Required verifies trusted refs too: a trusted ref's first signed
	// head is its baseline, then every new commit is checked.
	Required    bool     `yaml:"required"`
	PGPKeyFiles []string `yaml:"pgpKeyFiles"`
	SSHKeyFiles []string `yaml:"sshKeyFiles"`
	// From are full IDs of signed commits accepted as baselines.
	From []string `yaml:"from"`
}

// authConfig names where credentials come from; the file never holds them.
type authConfig struct {
	UsernameEnv    string `yaml:"usernameEnv"`
	PasswordEnv    string `yaml:"passwordEnv"`
	TokenEnv       string `yaml:"tokenEnv"`
	SSHKeyFile     string `yaml:"sshKeyFile"`
	KnownHostsFile string `yaml:"knownHostsFile"`
}

type duration struct{ time.Duration }

func (d *duration) UnmarshalYAML(n *yaml.Node) error {
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		return fmt.Errorf("line %d: %q is not a duration (for example 30s or 5m)", n.Line, n.Value)
	}
	d.Duration = v
	return nil
}

type serveOptions struct {
	Config string
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &serveOptions{}
		cmd := &cobra.Command{
			Use:   "serve --config FILE",
			Short: "Keep polling repositories and run, attest and commit back what is new",
			Long: `Poll the repositories and refs of the configuration file, and reconcile each
ref whose commit moved: run what is new, attest it, commit the results back.
A new commit that edits or deletes an experiment cancels its in-flight runs.
At start, runs left in flight by a killed expsync are ended and then rerun or
recovered from the run cache, never duplicated.

The configuration file (YAML):

  store: /var/lib/expsync/store
  state: /var/lib/expsync/state
  key: /etc/expsync/expsync.key        # passphrase from EXPSYNC_PASSWORD
  interval: 30s
  batchInterval: 10s
  concurrency: 4
  gpus: 0                              # GPUs the runs' requests may add up to
  secretsFile: /etc/expsync/secrets.yaml  # {secret: {key: value}}, after EXPSYNC_SECRET_<NAME>_<KEY>
  repositories:
    - url: https://git.example/lab/experiments.git
      auth: {usernameEnv: GIT_USER, passwordEnv: GIT_TOKEN}
      refs:
        - {pattern: main, trusted: true}
        - {pattern: "refs/pull/*/head", trusted: false, resultsBranch: "expsync/results/pr-{{number}}"}
      verify: {sshKeyFiles: [/etc/expsync/allowed_signers]}
      # Statuses and one comment per pull request (gitea, forgejo, github,
      # gitlab); the API token comes from $EXPSYNC_FORGE_TOKEN (tokenEnv).
      forge: {kind: gitea, url: https://git.example, repository: lab/experiments}
      # required: true verifies trusted refs too (a ref's first signed head is
      # its baseline, then every new commit is checked); from: [COMMIT] names
      # a signed commit to verify from instead.

Refs that cannot take commits (pull request heads) need a resultsBranch: a
template naming one branch per ref ({{number}}: the pull request number,
{{ref}}: the ref without refs/), created from the ref's commit. A literal
branch on a pattern matching several refs is refused: it would commit one
pull request's results onto another's code. Verify a pull request's results
against its head: expsync verify results/ --key K --repo . --rev <PR head>.`,
			Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				return o.Exec(c.Context(), c.ErrOrStderr())
			},
		}
		cmd.Flags().StringVar(&o.Config, "config", "", "configuration file (required)")
		return cmd
	})
}

// Exec serves until SIGINT or SIGTERM.
func (o *serveOptions) Exec(ctx context.Context, log io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.Config == "" {
		return &exitError{2, errors.New("--config is required")}
	}
	cfg, err := loadServeConfig(o.Config)
	if err != nil {
		return &exitError{2, err}
	}
	if err := errors.Join(checkOwnFolder("store:", cfg.Store, storeEntries), checkOwnFolder("state:", cfg.State, stateEntries)); err != nil {
		return &exitError{2, fmt.Errorf("%s: %w", o.Config, err)}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	var logMu sync.Mutex // repositories are polled concurrently
	logf := func(format string, args ...any) {
		line := fmt.Sprintf("%s %s\n", time.Now().UTC().Format(time.RFC3339), fmt.Sprintf(format, args...))
		logMu.Lock()
		defer logMu.Unlock()
		io.WriteString(log, line)
	}
	reviews := newReviewers()
	opts := reconcile.LocalOptions{
		StoreDir: cfg.Store, StateDir: cfg.State, Key: cfg.Key, TrustedKeys: cfg.TrustedKeys, BuilderID: cfg.BuilderID,
		Concurrency: cfg.Concurrency, GPUs: cfg.GPUs, BatchInterval: cfg.BatchInterval.Duration,
		Events: func(e reconcile.Event) {
			reviews.event(e)
			switch e.Kind {
			case reconcile.EventRunFinished:
				logf("run %s of %s: %s", contract.ShortID(e.RunID), e.Experiment, e.Status)
			case reconcile.EventCommitted:
				if e.ResultsCommit != "" {
					logf("committed %d runs of %s: %s", e.Runs, contract.ShortID(e.Commit), e.ResultsCommit)
				}
			case reconcile.EventCommitFailed:
				logf("commit of %d runs failed (retried): %v", e.Runs, e.Err)
			}
		},
	}
	if cfg.Author != nil {
		opts.Author = gitsource.Signature{Name: cfg.Author.Name, Email: cfg.Author.Email}
	}
	// A run can read expsync's environment: the repositories' credentials
	// are redacted from runs like EXPSYNC_* credentials, whatever their
	// variables are called.
	opts.Runner.Redact = cfg.credentials()
	if cfg.SecretsFile != "" {
		if _, err := runner.FileSecrets(cfg.SecretsFile); err != nil {
			return &exitError{2, fmt.Errorf("%s: secretsFile: %w", o.Config, err)}
		}
		opts.Runner.SecretsFile = cfg.SecretsFile
	}
	commitSigner, ownKey, err := loadCommitSigner(cfg.CommitSigningKey)
	if err != nil {
		return &exitError{2, err}
	}
	opts.CommitSigner = commitSigner
	l, recovered, err := reconcile.OpenLocal(ctx, opts)
	if l == nil {
		return &exitError{2, err}
	}
	if kerr := l.KeyError(); kerr != nil {
		// Stop at once: every reconcile would fail at its first signature.
		l.Close(context.Background())
		return &exitError{2, fmt.Errorf("%s: %w; fix the key or its passphrase and start serve again", o.Config, kerr)}
	}
	if err != nil {
		logf("warning: %v", err)
	}
	for _, r := range recovered {
		what := "will run again"
		if r.Result != nil {
			what = "finished; its result is recovered from the run cache"
		}
		logf("run %s of %s was in flight when expsync stopped: %s", contract.ShortID(r.Contract.RunID), r.Contract.Experiment, what)
	}
	var sources []*gitsource.Source
	for i, rc := range cfg.Repositories {
		repo, err := rc.repository()
		if err != nil {
			l.Close(context.Background())
			return &exitError{2, fmt.Errorf("%s: repositories[%d]: %w", o.Config, i, err)}
		}
		if repo.Verify != nil && ownKey != "" {
			repo.Verify.OwnKeys = append(repo.Verify.OwnKeys, ownKey)
		}
		src, err := l.Source(repo)
		if err != nil {
			l.Close(context.Background())
			return &exitError{2, fmt.Errorf("%s: repositories[%d]: %w", o.Config, i, err)}
		}
		sources = append(sources, src)
		if rc.Forge != nil {
			client, err := rc.Forge.client(rc.URL)
			if err == nil {
				err = reviews.add(l, src, client, rc.Forge.Context, logf)
			}
			if err != nil {
				l.Close(context.Background())
				return &exitError{2, fmt.Errorf("%s: repositories[%d]: %w", o.Config, i, err)}
			}
		}
	}
	logf("serving %d repositories, polling every %s (store %s, state %s)", len(sources), cfg.Interval.Duration, cfg.Store, cfg.State)
	err = l.Serve(ctx, sources, reconcile.ServeOptions{Interval: cfg.Interval.Duration, Log: logf, Finished: reviews.finished})
	shutdown, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	reviews.close(shutdown)
	if cerr := l.Close(shutdown); cerr != nil {
		logf("shutdown: %v", cerr)
	}
	logf("stopped")
	return err
}

var goTypeInYAMLError = regexp.MustCompile(`not found in type main\.(\w+)`)

// configSections names the configuration's Go types for errors.
var configSections = map[string]string{
	"serveConfig":      "the configuration",
	"repositoryConfig": "a repository",
	"authConfig":       "a repository's auth",
	"authorConfig":     "author",
	"refConfig":        "a ref",
	"forgeConfig":      "a repository's forge",
	"verifyConfig":     "a repository's verify",
}

func loadServeConfig(file string) (*serveConfig, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, err
	}
	return parseServeConfig(file, data)
}

// parseServeConfig reads a configuration; relative paths in it are relative
// to the file's folder.
func parseServeConfig(file string, data []byte) (*serveConfig, error) {
	if len(data) > 1<<20 {
		return nil, fmt.Errorf("%s: larger than 1 MiB; this is not a configuration file", file)
	}
	var cfg serveConfig
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&cfg); err != nil {
		// yaml.v3 names Go types ("not found in type main.serveConfig"):
		// say what they are to the reader of the file.
		msg := goTypeInYAMLError.ReplaceAllStringFunc(err.Error(), func(m string) string {
			return "not found in " + configSections[goTypeInYAMLError.FindStringSubmatch(m)[1]] + " (see `expsync serve --help`)"
		})
		return nil, fmt.Errorf("%s: %s", file, msg)
	}
	base := filepath.Dir(file)
	rel := func(p string) string {
		if p == "" || filepath.IsAbs(p) || strings.Contains(p, "://") {
			return p
		}
		return filepath.Join(base, p)
	}
	if cfg.Store == "" {
		cfg.Store = defaultStoreDir()
	}
	if cfg.State == "" {
		cfg.State = defaultStateDir()
	}
	if cfg.Key == "" {
		cfg.Key = os.Getenv("EXPSYNC_KEY")
	}
	cfg.Store, cfg.State, cfg.Key = rel(cfg.Store), rel(cfg.State), rel(cfg.Key)
	cfg.CommitSigningKey, cfg.SecretsFile = rel(cfg.CommitSigningKey), rel(cfg.SecretsFile)
	for i := range cfg.TrustedKeys {
		cfg.TrustedKeys[i] = rel(cfg.TrustedKeys[i])
	}
	if cfg.Key == "" {
		return nil, fmt.Errorf("%s: key: a signing key is required (make one with `expsync keygen`)", file)
	}
	if cfg.Interval.Duration == 0 {
		cfg.Interval.Duration = 30 * time.Second
	}
	if cfg.BatchInterval.Duration == 0 {
		cfg.BatchInterval.Duration = 10 * time.Second
	}
	if cfg.GPUs < 0 || cfg.Concurrency < 0 {
		return nil, fmt.Errorf("%s: gpus %d, concurrency %d: give numbers of 0 or more", file, cfg.GPUs, cfg.Concurrency)
	}
	if len(cfg.Repositories) == 0 {
		return nil, fmt.Errorf("%s: repositories: at least one repository is required", file)
	}
	seen := map[string]int{}
	for i, r := range cfg.Repositories {
		if r.URL == "" {
			return nil, fmt.Errorf("%s: repositories[%d].url is required", file, i)
		}
		// Two entries would poll and fetch into one Git cache at once and
		// reconcile each ref twice.
		if j, ok := seen[r.URL]; ok {
			return nil, fmt.Errorf("%s: repositories[%d]: %s is repositories[%d] already: list all its refs in one entry", file, i, r.URL, j)
		}
		seen[r.URL] = i
		if len(r.Refs) == 0 {
			return nil, fmt.Errorf("%s: repositories[%d].refs: watch at least one ref, for example {pattern: main, trusted: true}", file, i)
		}
		for k, ref := range r.Refs {
			if err := reconcile.CheckResultsBranch(ref.Pattern, ref.ResultsBranch); err != nil {
				return nil, fmt.Errorf("%s: repositories[%d].refs[%d]: %w", file, i, k, err)
			}
			if !ref.Trusted && (r.Verify == nil || len(r.Verify.PGPKeyFiles)+len(r.Verify.SSHKeyFiles) == 0) {
				return nil, fmt.Errorf("%s: repositories[%d].refs[%d]: pattern %q is not trusted, so its commits run only when signed by an allowed key, and none is configured: add verify: {sshKeyFiles: [FILE]} or verify: {pgpKeyFiles: [FILE]} to the repository, or set trusted: true",
					file, i, k, ref.Pattern)
			}
		}
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
		if r.Forge != nil {
			if err := r.Forge.check(); err != nil {
				return nil, fmt.Errorf("%s: repositories[%d]: %w", file, i, err)
			}
		}
	}
	return &cfg, nil
}

// credentials are the values of the variables the repositories' auth
// names for passwords and tokens.
func (cfg *serveConfig) credentials() []string {
	var out []string
	for _, r := range cfg.Repositories {
		if r.Forge != nil {
			// The forge's token too: a run could read it from expsync's
			// environment and print it into its log or outputs.
			if v := os.Getenv(r.Forge.tokenEnv()); v != "" {
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

// repository turns one entry into a gitsource.Repository; credentials come
// from the environment variables the entry names.
func (rc repositoryConfig) repository() (gitsource.Repository, error) {
	repo := gitsource.Repository{URL: rc.URL, URLPolicy: gitsource.URLPolicy{AllowHTTP: rc.AllowHTTP}}
	for _, r := range rc.Refs {
		repo.Refs = append(repo.Refs, gitsource.RefPolicy{Pattern: r.Pattern, Trusted: r.Trusted, ResultsBranch: r.ResultsBranch})
	}
	if a := rc.Auth; a != nil {
		repo.Auth = &gitsource.Auth{Username: os.Getenv(a.UsernameEnv), Password: os.Getenv(a.PasswordEnv), BearerToken: os.Getenv(a.TokenEnv)}
		if a.UsernameEnv == "" {
			repo.Auth.Username = ""
		}
		if a.SSHKeyFile != "" {
			key, err := os.ReadFile(a.SSHKeyFile)
			if err != nil {
				return repo, fmt.Errorf("auth.sshKeyFile: %w", err)
			}
			repo.Auth.SSHPrivateKey = key
		}
		if a.KnownHostsFile != "" {
			kh, err := os.ReadFile(a.KnownHostsFile)
			if err != nil {
				return repo, fmt.Errorf("auth.knownHostsFile: %w", err)
			}
			repo.Auth.KnownHosts = kh
		}
	}
	if v := rc.Verify; v != nil {
		files := append(append([]string(nil), v.PGPKeyFiles...), v.SSHKeyFiles...)
		p, err := commitVerifyPolicy(files)
		if err != nil {
			return repo, fmt.Errorf("verify: %w", err)
		}
		p.Required = v.Required
		p.From = v.From
		repo.Verify = p
	}
	return repo, nil
}
