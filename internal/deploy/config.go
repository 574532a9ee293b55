package deploy

import "time"

// Config is the YAML file of `expsync serve --config FILE`: a deployment
// and the repositories it watches.
type Config struct {
	// Store, State and Key as for `expsync run`.
	Store string `yaml:"store"`
	State string `yaml:"state"`
	Key   string `yaml:"key"`
	// TrustedKeys are further public keys whose results count as done.
	TrustedKeys []string `yaml:"trustedKeys"`
	BuilderID   string   `yaml:"builderID"`
	// Interval between polls; BatchInterval between results commits.
	Interval      Duration `yaml:"interval"`
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
	Name  string `yaml:"name"`
	Email string `yaml:"email"`
}

// RepositoryConfig is one repository a deployment watches. An
// ExperimentRepository's spec mirrors it, with a Secret in place of Auth
// and of the key files.
type RepositoryConfig struct {
	URL       string        `yaml:"url"`
	AllowHTTP bool          `yaml:"allowHTTP"`
	Auth      *AuthConfig   `yaml:"auth"`
	Refs      []RefConfig   `yaml:"refs"`
	Verify    *VerifyConfig `yaml:"verify"`
	// Forge posts statuses and a comment on pull requests.
	Forge *ForgeConfig `yaml:"forge"`
}

// RefConfig is a watched ref pattern (gitsource.RefPolicy).
type RefConfig struct {
	Pattern       string `yaml:"pattern"`
	Trusted       bool   `yaml:"trusted"`
	ResultsBranch string `yaml:"resultsBranch"`
}

// VerifyConfig is a repository's commit verification.
type VerifyConfig struct {
	// Required verifies trusted refs too: a trusted ref's first signed
	// head is its baseline, then every new commit is checked.
	Required    bool     `yaml:"required"`
	PGPKeyFiles []string `yaml:"pgpKeyFiles"`
	SSHKeyFiles []string `yaml:"sshKeyFiles"`
	// From are full IDs of signed commits accepted as baselines.
	From []string `yaml:"from"`
}

// AuthConfig names where a repository's credentials come from; the file
// never holds them.
type AuthConfig struct {
	UsernameEnv    string `yaml:"usernameEnv"`
	PasswordEnv    string `yaml:"passwordEnv"`
	TokenEnv       string `yaml:"tokenEnv"`
	SSHKeyFile     string `yaml:"sshKeyFile"`
	KnownHostsFile string `yaml:"knownHostsFile"`
}

// Duration is a time.Duration written as "30s" or "5m".
type Duration struct{ time.Duration }
