package runner

import (
	"fmt"
	"os"
	"strings"

	"gopkg.in/yaml.v3"
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
	return func(name, key string) (string, bool, error) {
		v, ok := doc[name][key]
		return v, ok, nil
	}, nil
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
