package main

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRunReadsSecretsFromASecretsFile: `expsync run --secrets-file FILE`
// gives secretRef variables their values from a YAML file (the issue's
// "operator's environment or a secrets file"; before, only `expsync exec`
// had the flag). The value reaches the command, never the results; a
// secrets file that cannot be read is a usage error naming the file, never
// quoting a value.
func TestRunReadsSecretsFromASecretsFile(t *testing.T) {
	const value = "from-the-file-7f3a9c"
	l := newLab(t)
	l.Commit("secret", map[string]string{"experiments/tok.yaml": `apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata:
  name: tok
spec:
  image: host
  command: ["sh", "-c", "echo got $TOK; printf %s \"$TOK\" | sha256sum | cut -d' ' -f1 > out.txt"]
  outputs: [out.txt]
  env:
    - {name: TOK, secretRef: {name: lab-tokens, key: api}}
  resources: {cpu: 100m}
`})
	key, _ := labKeyPair(t)
	dir := t.TempDir()
	secrets := filepath.Join(dir, "secrets.yaml")
	if err := os.WriteFile(secrets, []byte("lab-tokens:\n  api: "+value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(dir, "broken.yaml")
	if err := os.WriteFile(broken, []byte("lab-tokens: ["+value+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	args := func(file string) []string {
		return []string{"run", l.URL(), "--allow-http", "--key", key, "--store", filepath.Join(dir, "store"),
			"--state", filepath.Join(dir, "state"), "--progress", "none", "--secrets-file", file}
	}
	head := l.Head()
	for _, file := range []string{broken, filepath.Join(dir, "missing.yaml")} {
		code, stdout, stderr := labCLI(t, args(file)...)
		if code != 2 || !strings.Contains(stderr, file) || strings.Contains(stderr+stdout, value) {
			t.Errorf("--secrets-file %s: exit %d, want 2 naming the file and no value\nstdout: %s\nstderr: %s", file, code, stdout, stderr)
		}
	}
	if l.Head() != head {
		t.Fatal("a run with an unreadable secrets file committed results")
	}

	code, stdout, stderr := labCLI(t, args(secrets)...)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	folders := l.folders("tok")
	if len(folders) != 1 {
		t.Fatalf("%d run folders, want 1", len(folders))
	}
	sum := sha256.Sum256([]byte(value))
	out, _ := os.ReadFile(filepath.Join(folders[0], "outputs", "out.txt"))
	if got := strings.TrimSpace(string(out)); got != hex.EncodeToString(sum[:]) {
		t.Errorf("the command saw a TOK hashing to %q, want the file's value", got)
	}
	logTxt, _ := os.ReadFile(filepath.Join(folders[0], "log.txt"))
	if !strings.Contains(string(logTxt), "got [REDACTED]") {
		t.Errorf("log.txt %q, want the value redacted", logTxt)
	}
	filepath.Walk(filepath.Dir(filepath.Dir(folders[0])), func(p string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if data, _ := os.ReadFile(p); strings.Contains(string(data), value) {
				t.Errorf("the secret's value was committed in %s", p)
			}
		}
		return err
	})
}
