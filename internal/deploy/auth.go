package deploy

import (
	"fmt"
	"os"

	"github.com/expsync/expsync/gitsource"
)

// AuthFromEnvironment reads `expsync run`'s Git credentials from the
// environment (EXPSYNC_GIT_USERNAME, _PASSWORD, _TOKEN, _SSH_KEY (a file),
// _SSH_PASSPHRASE, _KNOWN_HOSTS (a file)), never from flags: flags show up
// in process listings. nil when none is set.
func AuthFromEnvironment() *gitsource.Auth {
	a := &gitsource.Auth{
		Username:    os.Getenv("EXPSYNC_GIT_USERNAME"),
		Password:    os.Getenv("EXPSYNC_GIT_PASSWORD"),
		BearerToken: os.Getenv("EXPSYNC_GIT_TOKEN"),
	}
	if f := os.Getenv("EXPSYNC_GIT_SSH_KEY"); f != "" {
		a.SSHPrivateKey, _ = os.ReadFile(f)
		a.SSHPassphrase = os.Getenv("EXPSYNC_GIT_SSH_PASSPHRASE")
	}
	if f := os.Getenv("EXPSYNC_GIT_KNOWN_HOSTS"); f != "" {
		a.KnownHosts, _ = os.ReadFile(f)
	}
	if a.Username == "" && a.Password == "" && a.BearerToken == "" && a.SSHPrivateKey == nil && a.KnownHosts == nil {
		return nil
	}
	return a
}

// Keys of a Git credentials Secret, as Flux's GitRepository reads them, so
// one Secret serves both: username and password (HTTPS basic auth; with
// identity, password is the key's passphrase), bearerToken, identity (an
// SSH private key) with known_hosts, and ca.crt (caFile in older Secrets).
const (
	SecretUsername    = "username"
	SecretPassword    = "password"
	SecretBearerToken = "bearerToken"
	SecretIdentity    = "identity"
	SecretKnownHosts  = "known_hosts"
	SecretCA          = "ca.crt"
	SecretCALegacy    = "caFile"
)

// AuthFromSecret reads a repository's Git credentials from the data of a
// Secret with Flux GitRepository's keys. nil when data holds none.
func AuthFromSecret(data map[string][]byte) *gitsource.Auth {
	if len(data) == 0 {
		return nil
	}
	a := &gitsource.Auth{
		Username:    string(data[SecretUsername]),
		BearerToken: string(data[SecretBearerToken]),
		KnownHosts:  data[SecretKnownHosts],
		CABundle:    data[SecretCA],
	}
	if a.CABundle == nil {
		a.CABundle = data[SecretCALegacy]
	}
	if key := data[SecretIdentity]; len(key) > 0 {
		a.SSHPrivateKey = key
		a.SSHPassphrase = string(data[SecretPassword])
	} else {
		a.Password = string(data[SecretPassword])
	}
	return a
}

// auth reads the credentials an AuthConfig names: environment variables
// and files.
func (a *AuthConfig) auth() (*gitsource.Auth, error) {
	if a == nil {
		return nil, nil
	}
	auth := &gitsource.Auth{Username: os.Getenv(a.UsernameEnv), Password: os.Getenv(a.PasswordEnv), BearerToken: os.Getenv(a.TokenEnv)}
	if a.UsernameEnv == "" {
		auth.Username = ""
	}
	if a.SSHKeyFile != "" {
		key, err := os.ReadFile(a.SSHKeyFile)
		if err != nil {
			return nil, fmt.Errorf("auth.sshKeyFile: %w", err)
		}
		auth.SSHPrivateKey = key
	}
	if a.KnownHostsFile != "" {
		kh, err := os.ReadFile(a.KnownHostsFile)
		if err != nil {
			return nil, fmt.Errorf("auth.knownHostsFile: %w", err)
		}
		auth.KnownHosts = kh
	}
	return auth, nil
}
