package deploy

import "time"

// Config is the YAML file of `expsync serve --config FILE`: a deployment
// and the repositories it watches.
type Config struct {
	// Store is the folder of blobs, outputs, logs and the run cache, as
	// `expsync run --store` (default: $EXPSYNC_STORE, else
	// ~/.cache/expsync/store).
	Store string `yaml:"store"`
	// State is the folder of Git caches, the journal and work folders, as
	// `expsync run --state` (default: $EXPSYNC_STATE, else
	// ~/.local/state/expsync).
	State string `yaml:"state"`
	// Key is the signing key file, cosign's encrypted format (`expsync
	// keygen`), passphrase from EXPSYNC_PASSWORD (default: $EXPSYNC_KEY;
	// required).
	Key string `yaml:"key"`
	// TrustedKeys are further public keys whose results count as done.
	TrustedKeys []string `yaml:"trustedKeys"`
	// BuilderID is the attestations' builder ID (default
	// "https://expsync.dev/builder/local/unisolated", which says what local
	// mode is).
	BuilderID string `yaml:"builderID"`
	// Interval between polls of each repository (default 30s).
	Interval Duration `yaml:"interval"`
	// BatchInterval between results commits of one ref: finished runs are
	// committed together (default 10s).
	BatchInterval Duration `yaml:"batchInterval"`
	// Concurrency bounds the runs at once (0: CPU and memory requests).
	Concurrency int `yaml:"concurrency"`
	// GPUs the runs' requests may add up to (0: runs requesting one are
	// refused).
	GPUs int `yaml:"gpus"`
	// CommitSigningKey signs results commits (SSH or armored PGP private
	// key file; passphrase from EXPSYNC_COMMIT_KEY_PASSPHRASE).
	CommitSigningKey string             `yaml:"commitSigningKey"`
	Author           *AuthorConfig      `yaml:"author"`
	Repositories     []RepositoryConfig `yaml:"repositories"`
	// SecretsFile is a YAML file {secret: {key: value}} for secretRef
	// variables not set as EXPSYNC_SECRET_<NAME>_<KEY>.
	SecretsFile string `yaml:"secretsFile"`
	// Audit re-executes a sample of the finished runs of trusted branches
	// and commits signed reproduction statements (docs/reproducing-runs.md).
	Audit *AuditConfig `yaml:"audit"`
}

// AuditConfig is serve's audit sampling.
type AuditConfig struct {
	// Fraction of the finished runs re-executed, chosen by run ID so every
	// serve process agrees (0 < fraction <= 1).
	Fraction float64 `yaml:"fraction"`
	// PerBranch bounds the runs reproduced per branch after each
	// reconcile (default 1).
	PerBranch int `yaml:"perBranch"`
}

// AuthorConfig is the author of results commits.
type AuthorConfig struct {
	// Name of the results commits' author (default "expsync").
	Name string `yaml:"name"`
	// Email of the results commits' author (default "expsync@localhost").
	Email string `yaml:"email"`
}

// RepositoryConfig is one repository a deployment watches. An
// ExperimentRepository's spec mirrors it, with a Secret in place of Auth
// and of the key files.
type RepositoryConfig struct {
	// URL is the Git remote: https://, ssh://, user@host:path, a path or
	// file:// (required); never with credentials in it.
	URL string `yaml:"url"`
	// AllowHTTP permits a plain http:// URL (default false: credentials
	// and code would cross the network in clear).
	AllowHTTP bool        `yaml:"allowHTTP"`
	Auth      *AuthConfig `yaml:"auth"`
	// Refs are the watched refs (required: at least one, for example
	// {pattern: main, trusted: true}).
	Refs   []RefConfig   `yaml:"refs"`
	Verify *VerifyConfig `yaml:"verify"`
	// Forge posts statuses and a comment on pull requests.
	Forge *ForgeConfig `yaml:"forge"`
}

// RefConfig is a watched ref pattern (gitsource.RefPolicy).
type RefConfig struct {
	// Pattern is a branch ("main"), a branch glob ("exp/*") or a full ref
	// name or glob ("refs/pull/*/head"); '*' matches within one path
	// segment (required).
	Pattern string `yaml:"pattern"`
	// Trusted refs run their commits; untrusted ones (pull requests) run a
	// commit only when every new commit is signed by a key of verify
	// (default false).
	Trusted bool `yaml:"trusted"`
	// ResultsBranch receives the results of refs that cannot take commits
	// (pull request heads): a template, {{number}} the pull request's
	// number, {{ref}} the ref without refs/ (default: the ref itself, which
	// must then be a branch).
	ResultsBranch string `yaml:"resultsBranch"`
}

// VerifyConfig is a repository's commit verification.
type VerifyConfig struct {
	// Required verifies trusted refs too: a trusted ref's first signed
	// head is its baseline, then every new commit is checked.
	Required bool `yaml:"required"`
	// PGPKeyFiles are armored public keys whose commit signatures are
	// allowed.
	PGPKeyFiles []string `yaml:"pgpKeyFiles"`
	// SSHKeyFiles hold SSH public keys (authorized_keys lines) whose
	// commit signatures are allowed.
	SSHKeyFiles []string `yaml:"sshKeyFiles"`
	// From are full IDs of signed commits accepted as baselines.
	From []string `yaml:"from"`
}

// AuthConfig names where a repository's credentials come from; the file
// never holds them.
type AuthConfig struct {
	// UsernameEnv names the variable holding the HTTPS user name.
	UsernameEnv string `yaml:"usernameEnv"`
	// PasswordEnv names the variable holding the HTTPS password; its value
	// is redacted from logs and runs.
	PasswordEnv string `yaml:"passwordEnv"`
	// TokenEnv names the variable holding an HTTPS bearer token; its value
	// is redacted from logs and runs.
	TokenEnv string `yaml:"tokenEnv"`
	// SSHKeyFile is the SSH private key file for ssh:// URLs.
	SSHKeyFile string `yaml:"sshKeyFile"`
	// KnownHostsFile holds the SSH server's host keys (required with
	// SSHKeyFile: a host key is never accepted unseen).
	KnownHostsFile string `yaml:"knownHostsFile"`
}

// Duration is a time.Duration written as "30s" or "5m".
type Duration struct{ time.Duration }
