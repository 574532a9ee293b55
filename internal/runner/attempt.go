package runner

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/redact"
	"github.com/expsync/expsync/store"
)

type attemptRunner struct {
	c       contract.Contract
	opts    Options
	st      store.Store
	env     []string
	secrets []string // the values of secretVars, to redact
	// secretVars are the variables holding secrets, longest value first.
	secretVars []secretVar
}

// attempt runs one attempt and records its facts in res (exit code, log,
// outputs, usage); the returned outcome drives the retry policy.
func (r *attemptRunner) attempt(ctx context.Context, n int, res *contract.Result) outcome {
	// A result describes the last attempt only.
	res.ExitCode, res.Signal, res.SignalNumber, res.Usage, res.Outputs = -1, "", 0, contract.Usage{}, nil
	res.Metrics, res.MetricsSHA256, res.MetricsError = nil, "", ""
	res.LogSHA256, res.LogSize, res.LogTruncated, res.LogTail = "", 0, false, ""
	res.Withheld = nil
	var linked []linkedObject
	dir := r.opts.PreparedWork
	if n > 1 || dir == "" {
		var err error
		if dir, err = r.makeAttemptDir(n); err != nil {
			return outcome{outcomeInfra, fmt.Sprintf("attempt %d: %v", n, err)}
		}
		if !r.opts.KeepWork {
			defer removeLater(dir)
		}
		if out, ok := r.prepare(ctx, dir, &linked); !ok {
			return out
		}
	}
	work := dir
	timeout := r.c.Limits.Timeout.Duration
	if timeout <= 0 {
		timeout = r.opts.DefaultTimeout
	}
	// Declared variables override HOME and TMPDIR; nothing overrides the
	// run ID and the attempt number.
	env := append([]string{"HOME=" + work, "TMPDIR=" + work}, r.env...)
	env = append(env, "EXPSYNC_ATTEMPT="+strconv.Itoa(n))
	env = dedupeEnv(env)
	release := func() {}
	if r.opts.Admit != nil {
		rel, err := r.opts.Admit(ctx)
		if err != nil {
			return outcome{outcomeCancelled, fmt.Sprintf("not admitted: %v", err)}
		}
		release = rel
	}
	p, err := r.runProcess(ctx, processSpec{
		dir: work, logPath: dir + ".log", env: env, timeout: timeout, attempt: n,
	})
	// The process group is gone: its resources are free for the next run
	// while this one's outputs are hashed.
	release()
	res.ExitCode, res.Signal, res.SignalNumber = p.exitCode, p.signal, p.signalNumber
	res.Usage = p.usage
	if res.StartedAt.IsZero() && !p.startedAt.IsZero() {
		// The run starts with its first process, not when it was queued or
		// waited for admission.
		res.StartedAt = p.startedAt
	}
	// Before anything is stored: a run that wrote to a linked object
	// changed the store's bytes under that object's name, and storing the
	// log or an output with the same digest would dedupe against them.
	tampered := r.tampered(linked)
	// The log is kept even when the run was cancelled.
	r.recordLog(context.WithoutCancel(ctx), p, res)
	switch {
	case err != nil && errors.Is(err, errNotStarted) && p.startKind == outcomeFatal:
		// The experiment's own command cannot start (a typo, a script
		// that is not executable): as a shell would, a failure with exit
		// code 127 or 126, recorded and committed so the reviewer sees it,
		// not an infrastructure error retried on every reconcile.
		return outcome{outcomeNoStart, err.Error()}
	case err != nil && errors.Is(err, errNotStarted):
		return outcome{p.startKind, err.Error()}
	case err != nil:
		return outcome{outcomeInfra, err.Error()}
	case p.cancelled:
		return outcome{outcomeCancelled, "cancelled while running"}
	case p.timedOut:
		msg := fmt.Sprintf("attempt %d exceeded the timeout of %s; its process group was sent SIGTERM", n, timeout)
		if p.graceExpired {
			msg += fmt.Sprintf(" and, still running %s later, SIGKILL", r.opts.KillGrace)
		}
		return outcome{outcomeTimeout, msg}
	}
	succeeded := p.exitCode == 0
	outputs, oerr := collectOutputs(ctx, r.st, work, r.c.Outputs, outputRules{
		maxBytes: r.outputLimit(), maxFiles: r.outputFilesLimit(), required: succeeded, secrets: r.secretVars})
	res.Outputs = outputs
	r.readMetrics(ctx, work, res)
	// Recorded in run.json: it may quote a key the run wrote.
	res.MetricsError = contract.Truncate(redact.Text(res.MetricsError, r.secrets))
	leaked := r.withholdSecrets(context.WithoutCancel(ctx), res)
	if ctx.Err() != nil {
		// Cancelled after the process ended, while its outputs were stored:
		// what failed is the storing, not the run. Not a result (never
		// cached): the run executes again.
		return outcome{outcomeCancelled, "cancelled while its outputs were stored"}
	}
	if !succeeded {
		msg := fmt.Sprintf("exit code %d", p.exitCode)
		if p.signal != "" {
			msg = "killed by signal " + p.signal
		}
		if leaked != "" {
			msg += "; " + leaked
		}
		if oerr != nil {
			// Outputs of a failed run may be missing; what is said here
			// is about the ones it did write (names left out, limits).
			msg += "; " + oerr.Error()
		}
		return outcome{outcomeExit, msg}
	}
	// Every reason the outputs fail is said: a reader who fixes one must
	// not find the next at the next run.
	var problems []string
	for _, p := range []string{leaked, tampered} {
		if p != "" {
			problems = append(problems, p)
		}
	}
	if oerr != nil {
		problems = append(problems, oerr.Error())
	}
	if len(problems) > 0 {
		return outcome{outcomeOutputs, strings.Join(problems, "; ")}
	}
	return outcome{outcomeExit, ""}
}

// makeAttemptDir makes the attempt's work folder (also its TMPDIR; a log
// too large for memory spills next to it as <folder>.log).
func (r *attemptRunner) makeAttemptDir(n int) (string, error) {
	if dir, ok := pooledDir(r.opts.WorkRoot); ok {
		return dir, nil
	}
	prefix := fmt.Sprintf("%.12s-a%d-", r.c.RunID, n)
	dir, err := os.MkdirTemp(r.opts.WorkRoot, prefix)
	if errors.Is(err, fs.ErrNotExist) {
		if err := os.MkdirAll(r.opts.WorkRoot, 0o755); err != nil {
			return "", err
		}
		dir, err = os.MkdirTemp(r.opts.WorkRoot, prefix)
	}
	return dir, err
}

// tampered checks that the run did not write to the store objects linked
// into its work folder (read-only files stop everyone but root and their
// owner, who can chmod them). Every object still linked — by its path in
// the work folder, or by the store's path when the run removed or renamed
// its link — is rehashed. Changed objects are repaired or dropped
// (Linker.Drop).
func (r *attemptRunner) tampered(linked []linkedObject) string {
	l, ok := r.st.(store.Linker)
	if !ok {
		return ""
	}
	objects, _ := r.st.(interface{ ObjectPath(sha string) string })
	var written []string
	for _, o := range linked {
		path := o.dst
		fi, err := os.Lstat(path)
		if (err != nil || !os.SameFile(fi, o.was)) && objects != nil {
			// Removed or renamed in the work folder: a descriptor the run
			// opened before still writes to the object's inode, so the
			// store's file is checked, when it is still that inode.
			path = objects.ObjectPath(o.sha)
			fi, err = os.Lstat(path)
		}
		if err != nil || !os.SameFile(fi, o.was) {
			continue // the object's file is another one: not touched
		}
		if changed(path, o, fi) {
			l.Drop(o.sha)
			written = append(written, o.path)
		}
	}
	if len(written) == 0 {
		return ""
	}
	return fmt.Sprintf("the run wrote to %s in place; context and input files are shared read-only with the store (copy a file before changing it)", strings.Join(written, ", "))
}

// changed reports whether a linked object's file differs from the object:
// every one is rehashed after the run, whatever its size. A same-size
// rewrite that restores the modification time (touch -d) passes a size
// and mtime check, and the store would then hand the changed bytes, under
// the genuine digest, to later runs of other processes. Rehashing reads
// the bytes once (they are in the page cache from the run); copying the
// context instead of linking it reads and writes them:
// BenchmarkContextLinkRehashVsCopy puts both side by side.
func changed(path string, o linkedObject, now os.FileInfo) bool {
	if now.Size() != o.was.Size() {
		return true
	}
	return verifyFile(path, o.sha, o.path) != nil
}

// prepare materialises the context and the inputs into work.
func (r *attemptRunner) prepare(ctx context.Context, work string, linked *[]linkedObject) (outcome, bool) {
	if err := materialiseContext(ctx, r.st, r.c.Context.Tree, work, r.opts.VerifyStoreObjects, linked); err != nil {
		kind := outcomeFatal
		var mm *InputMismatchError
		if errors.As(err, &mm) {
			kind = outcomeMismatch
		}
		return outcome{kind, err.Error()}, false
	}
	if err := placeInputs(ctx, r.st, r.opts, r.c.Inputs, work, linked); err != nil {
		var mm *InputMismatchError
		var tr *transientError
		var un *unusableInputError
		switch {
		case errors.As(err, &mm):
			return outcome{outcomeMismatch, err.Error()}, false
		case errors.As(err, &un):
			return outcome{outcomeUnusableInput, err.Error()}, false
		case errors.As(err, &tr):
			return outcome{outcomeInfra, err.Error()}, false
		case ctx.Err() != nil:
			return outcome{outcomeCancelled, "cancelled while fetching inputs"}, false
		default:
			return outcome{outcomeFatal, err.Error()}, false
		}
	}
	return outcome{}, true
}

func (r *attemptRunner) outputLimit() int64 {
	limit := r.opts.MaxOutputBytes
	if l := r.c.Limits.MaxOutputBytes; l > 0 && l < limit {
		limit = l
	}
	return limit
}

// outputFilesLimit is the contract's limit on output files, within the
// builtin one.
func (r *attemptRunner) outputFilesLimit() int { return r.c.Limits.OutputFiles() }

func (r *attemptRunner) logLimit() int64 {
	limit := r.opts.MaxLogBytes
	if l := r.c.Limits.MaxLogBytes; l > 0 && l < limit {
		limit = l
	}
	return limit
}

// dedupeEnv keeps the last value of each variable (declared ones override
// the base), sorted for a stable environment.
func dedupeEnv(env []string) []string {
	seen := make(map[string]int, len(env))
	out := env[:0]
	for _, kv := range env {
		k := kv
		for i := 0; i < len(kv); i++ {
			if kv[i] == '=' {
				k = kv[:i]
				break
			}
		}
		if i, ok := seen[k]; ok {
			out[i] = kv
			continue
		}
		seen[k] = len(out)
		out = append(out, kv)
	}
	return out
}
