package local

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
)

// Execute runs the run's contract to its result: it submits the run, waits for it, and
// cancels it for this caller when ctx ends. It is what makes an Executor a
// reconcile.Executor. The journal records each run with its experiment.
func (e *Executor) Execute(ctx context.Context, run render.Run) (*contract.Result, error) {
	c := render.Contract(run)
	job, err := e.Submit(c, map[string]string{"experiment": c.Experiment})
	if err != nil {
		return nil, err
	}
	res, err := job.Wait(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		if !e.Abandon(job) {
			return job.Result() // ended: its process group is gone
		}
		// Another branch that plans the same run still waits for it: it
		// goes on for that branch, and is cancelled for this one.
		now := time.Now().UTC()
		return &contract.Result{RunID: c.RunID, Status: contract.Cancelled, ExitCode: -1, StartedAt: now, FinishedAt: now,
			Error: "cancelled for this branch; the run goes on for another branch that plans it"}, nil
	}
	return res, err
}

// ExecuteFresh runs a contract once, afresh: admitted by its requests like
// every run (a reproduction shares the machine with the runs), but never
// answered from the run cache nor recorded in it (the attested result
// stays the run's), and never joined to the run's own job if it is
// running. serve's audit reproduces runs with it. Reproductions are not
// journalled: after a crash, Recover does not end what one left running
// (its command dies with expsync; processes that left its group may not).
func (e *Executor) ExecuteFresh(ctx context.Context, c contract.Contract) (*contract.Result, error) {
	if err := runner.Validate(c); err != nil {
		return nil, err
	}
	req, err := e.requestOf(c)
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	if e.closing {
		e.mu.Unlock()
		return nil, ErrShutdown
	}
	if _, busy := e.jobs[freshKey(c.RunID)]; busy {
		e.mu.Unlock()
		return nil, fmt.Errorf("run %s is being reproduced already", contract.ShortID(c.RunID))
	}
	jctx, cancel := context.WithCancel(context.Background())
	j := &Job{RunID: c.RunID, Contract: c, req: req, ctx: jctx, cancel: cancel, done: make(chan struct{}), waiters: 1, fresh: true}
	e.jobs[j.key()] = j
	e.queue = append(e.queue, j)
	e.counts.Submitted++
	e.counts.Queued++
	counts := e.counts
	e.mu.Unlock()
	e.emit(Event{Kind: EventQueued, RunID: c.RunID, Counts: counts})
	e.dispatch()
	res, err := j.Wait(ctx)
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		e.Abandon(j)
		return j.Result()
	}
	return res, err
}

// runFresh runs a reproduction's contract through the runner, admitted like
// any run, without the run cache or the journal.
func (e *Executor) runFresh(j *Job) (*contract.Result, error) {
	opts := e.opts.Runner
	opts.Store = e.opts.Store
	opts.Admit = e.admit(j)
	return runner.Run(j.ctx, j.Contract, opts)
}
