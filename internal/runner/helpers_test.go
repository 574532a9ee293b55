package runner

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

func shaOf(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

func randomRunID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// fixture is a store, a work root and fast retry settings for one test.
type fixture struct {
	t    *testing.T
	st   *store.Local
	opts Options
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{t: t, st: st, opts: Options{
		Store:     st,
		WorkRoot:  t.TempDir(),
		KillGrace: 300 * time.Millisecond,
		Backoff:   time.Millisecond,
		Secrets:   func(string, string) (string, bool, error) { return "", false, nil },
	}}
}

// exportContext exports files (path → content; a path ending in "*" is
// executable) as a context tree and returns its ID.
func (f *fixture) exportContext(files map[string]string) string {
	f.t.Helper()
	m := tree.NewMemory()
	for p, content := range files {
		mode := tree.ModeFile
		if strings.HasSuffix(p, "*") {
			p, mode = strings.TrimSuffix(p, "*"), tree.ModeExecutable
		}
		if err := m.Write(p, []byte(content), mode); err != nil {
			f.t.Fatal(err)
		}
	}
	id, err := store.ExportTree(context.Background(), f.st, m, "")
	if err != nil {
		f.t.Fatal(err)
	}
	return string(id)
}

func (f *fixture) run(c contract.Contract) *contract.Result {
	f.t.Helper()
	res, err := Run(context.Background(), c, f.opts)
	if err != nil {
		f.t.Fatalf("Run: %v", err)
	}
	return res
}

func (f *fixture) blob(sha string) string {
	f.t.Helper()
	rc, err := f.st.Open(context.Background(), sha)
	if err != nil {
		f.t.Fatalf("open blob: %v", err)
	}
	defer rc.Close()
	b, _ := io.ReadAll(rc)
	return string(b)
}

// contractBuilder builds test contracts fluently.
type contractBuilder struct{ c contract.Contract }

func newContract(command ...string) *contractBuilder {
	return &contractBuilder{c: contract.Contract{
		Version: contract.Version, RunID: randomRunID(), Experiment: "test",
		Image: contract.HostImage, Command: command,
	}}
}

func shell(script string) *contractBuilder { return newContract("sh", "-c", script) }

func (b *contractBuilder) context(tree string) *contractBuilder { b.c.Context.Tree = tree; return b }
func (b *contractBuilder) outputs(o ...string) *contractBuilder { b.c.Outputs = o; return b }
func (b *contractBuilder) metrics(p string) *contractBuilder    { b.c.Metrics = p; return b }
func (b *contractBuilder) env(name, value string) *contractBuilder {
	b.c.Env = append(b.c.Env, contract.EnvVar{Name: name, Value: value})
	return b
}
func (b *contractBuilder) secret(name, secret, key string) *contractBuilder {
	b.c.Env = append(b.c.Env, contract.EnvVar{Name: name, SecretRef: &contract.SecretRef{Name: secret, Key: key}})
	return b
}
func (b *contractBuilder) input(in contract.Input) *contractBuilder {
	b.c.Inputs = append(b.c.Inputs, in)
	return b
}
func (b *contractBuilder) timeout(d time.Duration) *contractBuilder {
	b.c.Limits.Timeout = contract.Duration{Duration: d}
	return b
}
func (b *contractBuilder) retries(limit int, codes ...int32) *contractBuilder {
	b.c.Retries = contract.Retries{Limit: limit, OnExitCodes: codes}
	return b
}
func (b *contractBuilder) limits(f func(*contract.Limits)) *contractBuilder { f(&b.c.Limits); return b }
func (b *contractBuilder) build() contract.Contract                         { return b.c }

// alive reports whether pid is a live (non-zombie) process.
func alive(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	return i < 0 || !strings.HasPrefix(strings.TrimSpace(s[i+1:]), "Z")
}

// readPID waits for a pid file and returns its number.
func readPID(t *testing.T, path string) int {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		b, err := os.ReadFile(path)
		if err == nil {
			if pid, err := strconv.Atoi(strings.TrimSpace(string(b))); err == nil && pid > 0 {
				return pid
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no pid in %s after 5s", path)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitGone waits up to 2s for pid to die.
func waitGone(pid int) bool {
	for range 200 {
		if !alive(pid) {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
}

// cgroupsAvailable reports whether this machine lets the runner make
// cgroup v2 groups.
func cgroupsAvailable() bool {
	if acquireProcessGroup() == "" {
		return false
	}
	releaseProcessGroup()
	return true
}
