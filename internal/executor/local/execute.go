package local

import (
	"context"
	"errors"
	"time"

	"github.com/expsync/expsync/contract"
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
