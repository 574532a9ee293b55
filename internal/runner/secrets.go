package runner

import (
	"fmt"
	"os"
	"strings"
	"sync"

	"gopkg.in/yaml.v3"

	"github.com/expsync/expsync/internal/platform"
)

// SecretSource returns a secret's value; ok is false when it has none.
type SecretSource func(name, key string) (value string, ok bool, err error)

// SecretEnvName is the operator's environment variable holding a secret:
// EXPSYNC_SECRET_<NAME>_<KEY>, upper-cased, every other character than
// A-Z and 0-9 replaced by "_" (lab-tokens/api → EXPSYNC_SECRET_LAB_TOKENS_API).
func SecretEnvName(name, key string) string {
	return "EXPSYNC_SECRET_" + envSafe(name) + "_" + envSafe(key)
}

func envSafe(s string) string {
	b := []byte(strings.ToUpper(s))
	for i, c := range b {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			b[i] = '_'
		}
	}
	return string(b)
}

// EnvSecrets reads secrets from the operator's environment.
func EnvSecrets(name, key string) (string, bool, error) {
	v, ok := os.LookupEnv(SecretEnvName(name, key))
	return v, ok, nil
}

// FileSecrets reads a YAML file `{<secret name>: {<key>: <value>}}` once and
// serves its values. The file should be readable by the operator only; its
// values never appear in an error.
func FileSecrets(path string) (SecretSource, error) {
	source, _, err := secretsFileSource(path)
	return source, err
}

func readSecretsFile(path string) (map[string]map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("secrets file: %w", err)
	}
	var doc map[string]map[string]string
	if err := yaml.Unmarshal(data, &doc); err != nil {
		// yaml errors quote the offending text, which may be a secret value:
		// report the position only.
		return nil, fmt.Errorf("secrets file %s: not a mapping of secret names to {key: value} mappings of strings", path)
	}
	return doc, nil
}

// secretsFileSource serves the secrets file and lists all of its values: a
// run can read the file (same user), so every value is redacted from every
// run, declared or not, as the operator's EXPSYNC_SECRET_* variables are.
func secretsFileSource(path string) (SecretSource, []string, error) {
	doc, err := readSecretsFile(path)
	if err != nil {
		return nil, nil, err
	}
	var values []string
	for _, keys := range doc {
		for _, v := range keys {
			values = append(values, v)
		}
	}
	return func(name, key string) (string, bool, error) {
		v, ok := doc[name][key]
		return v, ok, nil
	}, values, nil
}

// chainSecrets asks each source in turn.
func chainSecrets(sources ...SecretSource) SecretSource {
	return func(name, key string) (string, bool, error) {
		for _, s := range sources {
			if s == nil {
				continue
			}
			v, ok, err := s(name, key)
			if err != nil || ok {
				return v, ok, err
			}
		}
		return "", false, nil
	}
}

// secretValues are the values of a secret to redact and withhold: the
// value as stored and, when it has surrounding white space, the value
// without it. Secrets often end in a newline (a Kubernetes Secret made
// --from-file, a file written by echo, a YAML block scalar) and what a run
// uses — and writes into a name, a log line or a file — is the bare value:
// a shell's $(...) and a program's strip() drop the rest.
func secretValues(v string) []string {
	if v == "" {
		return nil
	}
	if bare := strings.TrimSpace(v); bare != v && bare != "" {
		return []string{v, bare}
	}
	return []string{v}
}

// minCredentialLen is the shortest operator credential redacted: masking
// every "1" or "ab" of a log would destroy it and protect nothing.
const minCredentialLen = 6

// appendOperatorCredentials adds expsync's own credentials to a run's
// secrets. A run is a child of expsync and, as the same user, can read
// expsync's environment (/proc/<ppid>/environ): the Git token, the signing
// key's passphrase and every operator secret (EXPSYNC_SECRET_*), declared
// by the run or not. They are redacted from its log and withheld from its
// outputs like its own secrets: every EXPSYNC_* variable whose name says
// SECRET, PASSWORD, PASSPHRASE or TOKEN, and the caller's extra values.
func appendOperatorCredentials(secrets []secretVar, extra []string) []secretVar {
	known := make(map[string]bool, len(secrets))
	for _, s := range secrets {
		known[s.value] = true
	}
	add := func(name, value string) {
		for _, v := range secretValues(value) {
			if len(v) < minCredentialLen || known[v] {
				continue
			}
			known[v] = true
			secrets = append(secrets, secretVar{name, v})
		}
	}
	for _, kv := range os.Environ() {
		name, value, _ := strings.Cut(kv, "=")
		if isOperatorCredential(name) {
			add("operator credential "+name, value)
		}
	}
	for _, v := range extra {
		add("a credential of expsync", v)
	}
	return secrets
}

func isOperatorCredential(name string) bool {
	if !strings.HasPrefix(name, "EXPSYNC_") {
		return false
	}
	for _, word := range []string{"SECRET", "PASSWORD", "PASSPHRASE", "TOKEN"} {
		if strings.Contains(name, word) {
			return true
		}
	}
	return false
}

var hideOnce sync.Once

// hideFromRuns makes this process non-dumpable before it starts its first
// run: its /proc files (environ, mem) then belong to root and ptrace is
// refused, so a run of the same user cannot read expsync's credentials
// from /proc/<ppid>/environ. Root with CAP_SYS_PTRACE still can (local
// mode is unisolated; redaction still keeps the values out of the
// results). Runs are unaffected: exec makes them dumpable again.
func hideFromRuns() {
	hideOnce.Do(func() { _ = platform.HideFromPeers() })
}
