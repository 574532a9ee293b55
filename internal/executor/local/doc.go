// Package local executes runs as local processes: a queue that admits runs
// while the sum of their CPU and memory requests fits the machine, with a
// journal that survives a crash.
//
// Usage:
//
//	ex, err := local.New(local.Options{Store: st, StateDir: dir})
//	recovered, err := ex.Recover(ctx) // first: end stale process groups of a killed expsync
//	job, err := ex.Submit(contract, meta)
//	res, err := job.Wait(ctx)
//	ex.Cancel(runID)
//	ex.Shutdown(ctx) // stop admitting; running runs finish, or are cancelled when ctx ends
//
// Every run goes through runner.RunCached, so a run whose result is in the
// store's run cache is not executed again, and two executors sharing a store
// execute a run once.
//
// The journal (<StateDir>/journal.jsonl, append-only) holds a record per run
// in flight: written before the process starts, updated with its process
// group and start time once it runs, ended after its result is stored. Recover
// ends the process groups of records left by a killed executor (after
// checking that the group's leader, if alive, has the recorded start time,
// so a reused PID is never killed) and returns the runs that were in flight,
// with their cached result when the store has one. One executor uses a state
// folder at a time (an flock on <StateDir>/executor.lock).
package local
