package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
)

// DeploymentOptions configure the local executor of a deployment on this
// machine (`expsync run`, `expsync serve`).
type DeploymentOptions struct {
	Store store.Store
	// StateDir is the deployment's state folder: the journal and lock go to
	// <StateDir>/executor, the work folders to <StateDir>/work unless
	// Runner.WorkRoot names another folder.
	StateDir string
	// Concurrency bounds the runs at once (0: as many as the CPU and memory
	// requests allow); GPUs is how many GPUs runs may request in total (0:
	// a run requesting one is refused).
	Concurrency, GPUs int
	// Runner tunes the runner (timeouts, secrets); Store and WorkRoot are
	// set here.
	Runner  runner.Options
	OnEvent func(Event)
}

// Open starts the executor of a deployment: it takes the state folder's
// lock and recovers what a killed predecessor left running — stale process
// groups are ended, and their runs are returned, to be rerun or recovered
// from the run cache by the next reconcile (runs are keyed by ID, so none
// is duplicated). An error with a nil Executor means the executor cannot
// start; with an Executor it is a warning (recovery problems: the runs are
// planned again from the branch anyway).
func Open(ctx context.Context, opts DeploymentOptions) (*Executor, []Recovered, error) {
	runOpts := opts.Runner
	runOpts.Store = opts.Store
	if runOpts.WorkRoot == "" {
		runOpts.WorkRoot = filepath.Join(opts.StateDir, "work")
	}
	if err := os.MkdirAll(runOpts.WorkRoot, 0o700); err != nil {
		return nil, nil, fmt.Errorf("state folder: %w", err)
	}
	ex, err := New(Options{Store: opts.Store, StateDir: filepath.Join(opts.StateDir, "executor"),
		MaxConcurrent: opts.Concurrency, GPUs: opts.GPUs, Runner: runOpts, OnEvent: opts.OnEvent})
	if err != nil {
		return nil, nil, err
	}
	// Processes that runs of a killed expsync left in its cgroup (they
	// left the command's session, so Pdeathsig missed them) end first:
	// until then they could write to store objects.
	cerr := runner.ClearStaleCgroups()
	recovered, err := ex.Recover(ctx)
	if err != nil {
		err = fmt.Errorf("recover runs of a previous expsync: %w", err)
	}
	if cerr != nil {
		err = errors.Join(err, fmt.Errorf("end the runs of a killed expsync: %w", cerr))
	}
	if opts.Runner.WorkRoot == "" {
		// <state>/work is this state folder's, whose lock the executor
		// holds: what is there was left by a killed predecessor, whose
		// processes Recover ended.
		if cerr := runner.ClearWorkRoot(runOpts.WorkRoot); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clear the work folders of a previous expsync: %w", cerr))
		}
	}
	return ex, recovered, err
}
