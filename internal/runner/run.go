package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/redact"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// Run executes c with retries and returns its result. The error is non-nil
// only when no result can be recorded (an invalid contract, an unusable
// store); every failure of the run itself is a Result.
func Run(ctx context.Context, c contract.Contract, opts Options) (*contract.Result, error) {
	if err := Validate(c); err != nil {
		return nil, err
	}
	st, err := openStore(c, opts)
	if err != nil {
		return nil, err
	}
	opts.Store = st
	opts = opts.withDefaults()
	hideFromRuns()
	res := &contract.Result{
		RunID:            c.RunID,
		ExitCode:         -1,
		QueuedAt:         time.Now().UTC(),
		Requests:         contract.Requests{CPU: c.Limits.CPU, Memory: c.Limits.Memory},
		SchedulingDigest: c.SchedulingDigest(),
	}
	finish := func(status contract.Status, msg string) (*contract.Result, error) {
		res.Status, res.Error = status, contract.Truncate(msg)
		res.FinishedAt = time.Now().UTC()
		if res.StartedAt.IsZero() {
			// The command never started: the run lasted from its preparation.
			res.StartedAt = res.QueuedAt
		}
		return res, nil
	}
	if ctx.Err() != nil {
		return finish(contract.Cancelled, "cancelled before start")
	}
	env, secretVars, err := buildEnv(c, opts)
	if err != nil {
		return finish(contract.Errored, err.Error())
	}
	r := &attemptRunner{c: c, opts: opts, st: st, env: env, secretVars: secretVars}
	for _, sv := range secretVars {
		r.secrets = append(r.secrets, sv.value)
	}
	infraRetries, exitRetries := 0, 0
	for attempt := 1; ; attempt++ {
		res.Attempts = attempt
		out := r.attempt(ctx, attempt, res)
		// The reason is committed: it may name a file the run made.
		out.msg = redact.Text(out.msg, r.secrets)
		switch {
		case opts.SingleAttempt:
			return finish(out.status(), out.msg)
		case out.kind == outcomeInfra && infraRetries < opts.InfraRetries && ctx.Err() == nil:
			infraRetries++
		case out.kind == outcomeExit && isTransient(c, res.ExitCode) && exitRetries < c.Retries.Limit && ctx.Err() == nil:
			exitRetries++
		default:
			return finish(out.status(), out.msg)
		}
		if !sleepCtx(ctx, backoff(opts, infraRetries+exitRetries)) {
			return finish(contract.Cancelled, "cancelled while waiting to retry after: "+out.msg)
		}
	}
}

// Validate checks what the runner relies on: the version, the run ID, a
// command, and paths that stay inside the work folder.
func Validate(c contract.Contract) error {
	if c.Version != contract.Version {
		return fmt.Errorf("contract version %q: this runner executes %q", c.Version, contract.Version)
	}
	if len(c.RunID) < 16 || strings.Trim(c.RunID, "0123456789abcdef") != "" {
		return fmt.Errorf("contract run ID %q: want lowercase hex", c.RunID)
	}
	if len(c.Command) == 0 || c.Command[0] == "" {
		return fmt.Errorf("contract %s: empty command", c.RunID)
	}
	for _, in := range c.Inputs {
		if _, err := cleanRel(in.Path); err != nil {
			return fmt.Errorf("contract %s: input %q: path %w", c.RunID, in.Name, err)
		}
		if !store.ValidSHA256(in.SHA256) {
			return fmt.Errorf("contract %s: input %q: invalid sha256 %q", c.RunID, in.Name, in.SHA256)
		}
	}
	for _, o := range c.Outputs {
		if _, err := cleanRel(strings.TrimSuffix(o, "/")); err != nil {
			return fmt.Errorf("contract %s: output %q: %w", c.RunID, o, err)
		}
	}
	if c.Metrics != "" {
		if _, err := cleanRel(c.Metrics); err != nil {
			return fmt.Errorf("contract %s: metrics %q: %w", c.RunID, c.Metrics, err)
		}
	}
	for _, e := range c.Env {
		if e.Name == "" || strings.ContainsAny(e.Name, "=\x00") {
			return fmt.Errorf("contract %s: invalid variable name %q", c.RunID, e.Name)
		}
	}
	return nil
}

// cleanRel cleans a slash path relative to the work folder and refuses the
// root, absolute paths and "..".
func cleanRel(p string) (string, error) {
	clean, err := tree.Clean(p)
	if err != nil {
		return "", err
	}
	if clean == "" {
		return "", fmt.Errorf("%q names the work folder itself", p)
	}
	return clean, nil
}

func openStore(c contract.Contract, opts Options) (store.Store, error) {
	if opts.Store != nil {
		return opts.Store, nil
	}
	st, err := store.Open(c.Store)
	if err != nil {
		return nil, fmt.Errorf("run %s: %w", c.RunID, err)
	}
	return st, nil
}

// secretVar is a secret value and how messages name it ("secret variable
// API_TOKEN", "operator credential EXPSYNC_GIT_TOKEN"), never by value.
type secretVar struct{ name, value string }

// buildEnv returns the command's environment: a clean base plus the
// declared variables, and the secret values to redact, longest first.
func buildEnv(c contract.Contract, opts Options) ([]string, []secretVar, error) {
	source := opts.Secrets
	redact := opts.Redact
	if source == nil {
		source = EnvSecrets
		if opts.SecretsFile != "" {
			file, values, err := secretsFileSource(opts.SecretsFile)
			if err != nil {
				return nil, nil, err
			}
			source = chainSecrets(EnvSecrets, file)
			redact = append(append([]string(nil), redact...), values...)
		}
	}
	vars := map[string]string{
		"PATH": opts.PATH,
		"LANG": "C.UTF-8",
	}
	var secrets []secretVar
	for _, e := range c.Env {
		if e.SecretRef == nil {
			vars[e.Name] = e.Value
			continue
		}
		v, ok, err := source(e.SecretRef.Name, e.SecretRef.Key)
		if err != nil {
			return nil, nil, fmt.Errorf("variable %s: secret %s/%s: %w", e.Name, e.SecretRef.Name, e.SecretRef.Key, err)
		}
		if !ok && opts.SecretsFromVariables {
			v, ok = os.LookupEnv(e.Name)
		}
		if !ok {
			where := "environment variable " + SecretEnvName(e.SecretRef.Name, e.SecretRef.Key)
			if opts.SecretsFromVariables {
				where += " or " + e.Name
			}
			if opts.SecretsFile != "" {
				where += " or secrets file " + opts.SecretsFile
			}
			return nil, nil, fmt.Errorf("variable %s: secret %s key %s is not set: set the %s", e.Name, e.SecretRef.Name, e.SecretRef.Key, where)
		}
		vars[e.Name] = v
		for _, value := range secretValues(v) {
			secrets = append(secrets, secretVar{"secret variable " + e.Name, value})
		}
	}
	// EXPSYNC_RUN_ID marks every process of the run (the executor's
	// recovery finds the ones that left the process group by it): no
	// declared variable overrides it.
	vars["EXPSYNC_RUN_ID"] = c.RunID
	env := make([]string, 0, len(vars))
	for k, v := range vars {
		env = append(env, k+"="+v)
	}
	sort.Strings(env)
	secrets = appendOperatorCredentials(secrets, redact)
	// Longest first, so a secret containing another is redacted whole.
	sort.SliceStable(secrets, func(i, j int) bool { return len(secrets[i].value) > len(secrets[j].value) })
	return env, secrets, nil
}

// ExitCode is the exit status a process running the run would report, for
// callers whose exit code carries the outcome (expsync exec in a pod):
// 0 succeeded; the command's own code when it failed (reserved codes become
// 1); 128+n when killed by signal n; 1 when the command succeeded but its
// outputs did not; 124 timed out; 143 cancelled; 65 an input mismatched;
// 222 an infrastructure error.
func ExitCode(r *contract.Result) int {
	switch r.Status {
	case contract.Succeeded:
		return 0
	case contract.TimedOut:
		return contract.ExitTimedOut
	case contract.Cancelled:
		return 128 + int(syscall.SIGTERM)
	case contract.InputMismatch:
		return contract.ExitInputMismatch
	case contract.Errored:
		return contract.ExitInfrastructure
	}
	switch {
	case r.SignalNumber > 0:
		return 128 + r.SignalNumber
	case r.ExitCode == contract.ExitInfrastructure || r.ExitCode <= 0 || r.ExitCode > 255:
		return 1
	}
	return r.ExitCode
}

func isTransient(c contract.Contract, code int) bool {
	for _, t := range c.Retries.OnExitCodes {
		if int(t) == code {
			return true
		}
	}
	return false
}

func backoff(opts Options, retry int) time.Duration {
	d := opts.Backoff
	for i := 1; i < retry && d < opts.MaxBackoff; i++ {
		d *= 2
	}
	return min(d, opts.MaxBackoff)
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// outcome is how one attempt ended, before retry policy applies.
type outcome struct {
	kind outcomeKind
	msg  string
}

type outcomeKind int

const (
	outcomeExit          outcomeKind = iota // the command ran and exited (ExitCode set)
	outcomeInfra                            // transient infrastructure failure: retry
	outcomeFatal                            // a permanent error before or around the command
	outcomeMismatch                         // an input's digest differs
	outcomeTimeout                          // the attempt's timeout fired
	outcomeCancelled                        // the caller's context ended
	outcomeOutputs                          // exit 0 but outputs missing or too large
	outcomeNoStart                          // the command cannot start here (not found, not executable): a result, never retried
	outcomeUnusableInput                    // an input the run names cannot be placed (404, path through a symlink): a result, never retried
)

func (o outcome) status() contract.Status {
	switch o.kind {
	case outcomeExit:
		if o.msg == "" {
			return contract.Succeeded
		}
		return contract.Failed
	case outcomeOutputs, outcomeNoStart, outcomeUnusableInput:
		return contract.Failed
	case outcomeMismatch:
		return contract.InputMismatch
	case outcomeTimeout:
		return contract.TimedOut
	case outcomeCancelled:
		return contract.Cancelled
	default:
		return contract.Errored
	}
}

var errNotStarted = errors.New("command did not start")

// Attempt folders are emptied by a background goroutine, off the run's
// critical path, and kept (a few per work root) for the next attempts:
// creating a folder costs about as much as the rest of a trivial run's
// bookkeeping on some file systems. cleanups counts the pending ones.
var (
	cleanups    sync.WaitGroup
	cleanupOnce sync.Once
	cleanupCh   chan string
	poolMu      sync.Mutex
	pools       = map[string][]string{} // work root → empty attempt folders
)

const poolSize = 64

func removeLater(dir string) {
	cleanupOnce.Do(func() {
		cleanupCh = make(chan string, 1024)
		go func() {
			for d := range cleanupCh {
				recycle(d)
				cleanups.Done()
			}
		}()
	})
	cleanups.Add(1)
	select {
	case cleanupCh <- dir:
	default: // backlog full: clean up here
		recycle(dir)
		cleanups.Done()
	}
}

// recycle empties an attempt folder into the pool, or removes it.
func recycle(dir string) {
	_ = os.Remove(dir + ".log")
	root := filepath.Dir(dir)
	poolMu.Lock()
	full := len(pools[root]) >= poolSize
	poolMu.Unlock()
	if full || !empty(dir) {
		removeAll(dir)
		return
	}
	poolMu.Lock()
	pools[root] = append(pools[root], dir)
	poolMu.Unlock()
}

// empty removes a folder's content without ever leaving it, even if the
// run replaced parts of it by symlinks.
func empty(dir string) bool {
	before, err := os.Lstat(dir)
	if err != nil || !before.IsDir() {
		return false
	}
	r, err := os.OpenRoot(dir)
	if err != nil {
		return false
	}
	defer r.Close()
	if fi, err := r.Stat("."); err != nil || !os.SameFile(fi, before) {
		return false
	}
	if err := r.Chmod(".", 0o755); err != nil {
		return false
	}
	f, err := r.Open(".")
	if err != nil {
		return false
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return false
	}
	for _, name := range names {
		if err := r.RemoveAll(name); err != nil {
			return false
		}
	}
	return true
}

// pooledDir takes an empty attempt folder of root, if any is still there.
func pooledDir(root string) (string, bool) {
	poolMu.Lock()
	defer poolMu.Unlock()
	for p := pools[root]; len(p) > 0; p = pools[root] {
		dir := p[len(p)-1]
		pools[root] = p[:len(p)-1]
		if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
			return dir, true
		}
	}
	return "", false
}

// WaitCleanup waits until the attempt folders of finished runs are emptied.
func WaitCleanup() { cleanups.Wait() }

// DropPool waits for pending cleanups and removes the empty attempt
// folders kept for reuse under root.
func DropPool(root string) {
	WaitCleanup()
	poolMu.Lock()
	p := pools[root]
	delete(pools, root)
	poolMu.Unlock()
	for _, d := range p {
		_ = os.Remove(d)
	}
}

// ClearWorkRoot removes everything in root: the attempt folders (and
// spilled logs) a killed process left there. Call it only on a work root
// no other process uses, before the first run.
func ClearWorkRoot(root string) error {
	DropPool(root)
	entries, err := os.ReadDir(root)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	var errs []error
	for _, e := range entries {
		p := filepath.Join(root, e.Name())
		removeAll(p)
		if _, err := os.Lstat(p); err == nil {
			errs = append(errs, fmt.Errorf("remove %s", p))
		}
	}
	return errors.Join(errs...)
}

func removeAll(dir string) {
	if err := os.RemoveAll(dir); err == nil {
		return
	}
	// A run may leave read-only folders behind: make them writable and retry.
	_ = chmodDirsWritable(dir)
	_ = os.RemoveAll(dir)
}
