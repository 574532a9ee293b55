package runner

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/store"
)

type attemptRunner struct {
	c       contract.Contract
	opts    Options
	st      store.Store
	env     []string
	secrets []string
}

// attempt runs one attempt and records its facts in res (exit code, log,
// outputs, usage); the returned outcome drives the retry policy.
func (r *attemptRunner) attempt(ctx context.Context, n int, res *Result) outcome {
	dir, err := r.makeAttemptDir(n)
	if err != nil {
		return outcome{outcomeInfra, fmt.Sprintf("attempt %d: %v", n, err)}
	}
	if !r.opts.KeepWork {
		defer removeLater(dir)
	}
	work := filepath.Join(dir, "work")
	if out, ok := r.prepare(ctx, work); !ok {
		return out
	}
	timeout := r.c.Limits.Timeout.Duration
	if timeout <= 0 {
		timeout = r.opts.DefaultTimeout
	}
	// Declared variables override HOME and TMPDIR; nothing overrides the
	// attempt number.
	env := append([]string{"HOME=" + work, "TMPDIR=" + dir}, r.env...)
	env = append(env, "EXPSYNC_ATTEMPT="+strconv.Itoa(n))
	env = dedupeEnv(env)
	p, err := r.runProcess(ctx, processSpec{
		dir: work, logPath: filepath.Join(dir, "log"), env: env, timeout: timeout, attempt: n,
	})
	res.ExitCode, res.Signal = p.exitCode, p.signal
	res.Usage = p.usage
	r.recordLog(ctx, p, res)
	switch {
	case err != nil && errors.Is(err, errNotStarted):
		return outcome{p.startKind, err.Error()}
	case err != nil:
		return outcome{outcomeInfra, err.Error()}
	case p.cancelled:
		return outcome{outcomeCancelled, "cancelled while running"}
	case p.timedOut:
		return outcome{outcomeTimeout, fmt.Sprintf("attempt %d exceeded the timeout of %s; its process group was killed", n, timeout)}
	}
	succeeded := p.exitCode == 0
	outputs, oerr := collectOutputs(ctx, r.st, work, r.c.Outputs, r.outputLimit(), succeeded)
	res.Outputs = outputs
	r.readMetrics(ctx, work, res)
	if !succeeded {
		msg := fmt.Sprintf("exit code %d", p.exitCode)
		if p.signal != "" {
			msg = "killed by signal " + p.signal
		}
		return outcome{outcomeExit, msg}
	}
	if oerr != nil {
		return outcome{outcomeOutputs, oerr.Error()}
	}
	return outcome{outcomeExit, ""}
}

func (r *attemptRunner) makeAttemptDir(n int) (string, error) {
	if err := os.MkdirAll(r.opts.WorkRoot, 0o755); err != nil {
		return "", err
	}
	dir, err := os.MkdirTemp(r.opts.WorkRoot, fmt.Sprintf("%.12s-a%d-", r.c.RunID, n))
	if err != nil {
		return "", err
	}
	return dir, nil
}

// prepare materialises the context and the inputs into work.
func (r *attemptRunner) prepare(ctx context.Context, work string) (outcome, bool) {
	if err := materialiseContext(ctx, r.st, r.c.Context.Tree, work, r.opts.VerifyStoreObjects); err != nil {
		kind := outcomeFatal
		var mm *InputMismatchError
		if errors.As(err, &mm) {
			kind = outcomeMismatch
		}
		return outcome{kind, err.Error()}, false
	}
	if err := placeInputs(ctx, r.st, r.opts, r.c.Inputs, work); err != nil {
		var mm *InputMismatchError
		var tr *transientError
		switch {
		case errors.As(err, &mm):
			return outcome{outcomeMismatch, err.Error()}, false
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
