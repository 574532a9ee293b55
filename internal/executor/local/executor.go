package local

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
)

// Options configure an Executor. Store and StateDir are required.
type Options struct {
	Store store.Store
	// StateDir holds the journal and the executor's lock.
	StateDir string
	// CPUs is the CPU capacity (default runtime.NumCPU()).
	CPUs float64
	// MemoryBytes is the memory capacity (default MemAvailable at New).
	MemoryBytes int64
	// GPUs is the number of GPUs runs may request in total (default 0:
	// a run requesting a GPU is refused).
	GPUs int
	// MaxConcurrent bounds the runs running at once whatever their
	// requests (0: no bound beyond CPU and memory).
	MaxConcurrent int
	// Pipeline bounds the runs being prepared or finished besides those
	// running (default 2 x NumCPU).
	Pipeline int
	// DefaultCPUMilli is the request of a run that states none (default
	// 1000: one core); DefaultMemoryBytes likewise (default 0).
	DefaultCPUMilli    int64
	DefaultMemoryBytes int64
	// Runner are the runner's options; the executor sets Store and OnStart.
	Runner runner.Options
	// OnEvent receives progress events, serially, from the executor's
	// goroutines; it must not block for long or call back into the executor.
	OnEvent func(Event)
}

// EventKind is a step of a run's life in the executor.
type EventKind string

const (
	EventQueued   EventKind = "queued"
	EventStarted  EventKind = "started"
	EventFinished EventKind = "finished"
)

// Event reports one step and the counts after it.
type Event struct {
	Kind  EventKind
	RunID string
	// Result is set for EventFinished (nil when the runner failed outright;
	// Err says why).
	Result *contract.Result
	Err    error
	Counts Counts
}

// Counts are the executor's totals since New.
type Counts struct {
	Submitted, Queued, Running, Finished int
	// Succeeded and Cached are subsets of Finished.
	Succeeded, Cached int
}

// ErrShutdown is returned by Submit after Shutdown.
var ErrShutdown = errors.New("executor is shutting down")

// Executor runs contracts as local process groups.
//
// A run goes through three stages: queued (waiting for a worker), active
// (its work folder is prepared, then it waits for admission), running (it
// holds its CPU and memory request while its process group lives), and
// finishing (outputs hashed into the store, result cached). Only running
// counts against capacity: preparing and finishing are I/O and overlap with
// other runs' processes, bounded by Options.Pipeline.
type Executor struct {
	opts     Options
	capacity request
	journal  *journal
	lockFile *os.File

	mu      sync.Mutex
	queue   []*Job          // not yet active, first in first out
	waiting []*Job          // active, waiting for admission, in order
	jobs    map[string]*Job // queued, active or running
	used    request
	running int
	active  int // jobs with a goroutine: preparing, waiting, running, finishing
	counts  Counts
	closing bool
	idle    *sync.Cond
	eventMu sync.Mutex
}

// Job is a submitted run.
type Job struct {
	RunID    string
	Contract contract.Contract
	Meta     map[string]string

	req     request
	ctx     context.Context
	cancel  context.CancelFunc
	done    chan struct{}
	result  *contract.Result
	err     error
	started bool // admitted once: counted as running, no longer as queued
	// waiters counts the Submits that returned this job and have not
	// abandoned it: two branches planning one run share its job, and one
	// branch giving up must not end the other's run.
	waiters int
	// fresh marks a reproduction (ExecuteFresh): executed afresh, never
	// from or into the run cache, never shared with the run's own job.
	fresh bool
}

// key is the job's key in Executor.jobs: its run ID, or for a
// reproduction a key of its own, so it never joins the run's job.
func (j *Job) key() string {
	if j.fresh {
		return freshKey(j.RunID)
	}
	return j.RunID
}

func freshKey(runID string) string { return "reproduction/" + runID }

// Done is closed when the job finished.
func (j *Job) Done() <-chan struct{} { return j.done }

// Result returns the job's result once Done is closed.
func (j *Job) Result() (*contract.Result, error) {
	<-j.done
	return j.result, j.err
}

// Wait waits for the job or ctx.
func (j *Job) Wait(ctx context.Context) (*contract.Result, error) {
	select {
	case <-j.done:
		return j.result, j.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// New opens the state folder (taking its lock) and returns an executor.
func New(opts Options) (*Executor, error) {
	if opts.Store == nil {
		return nil, errors.New("local executor: no store")
	}
	if opts.StateDir == "" {
		return nil, errors.New("local executor: no state folder")
	}
	if opts.CPUs <= 0 {
		opts.CPUs = float64(runtime.NumCPU())
	}
	if opts.MemoryBytes <= 0 {
		m, err := MemAvailable()
		if err != nil {
			return nil, fmt.Errorf("local executor: memory capacity: %w (set it explicitly)", err)
		}
		opts.MemoryBytes = m
	}
	if opts.Runner.WorkRoot == "" {
		if l, ok := opts.Store.(*store.Local); ok {
			opts.Runner.WorkRoot = filepath.Join(l.Root(), "work")
		}
	}
	if opts.Pipeline <= 0 {
		opts.Pipeline = 2 * runtime.NumCPU()
	}
	if opts.DefaultCPUMilli <= 0 {
		opts.DefaultCPUMilli = 1000
	}
	if err := os.MkdirAll(opts.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("local executor: state folder: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(opts.StateDir, "executor.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("local executor: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("local executor: state folder %s is in use by another expsync process (%v): wait for it to end, or give each expsync its own state folder (--state; they may share a store)", opts.StateDir, err)
	}
	jr, err := openJournal(filepath.Join(opts.StateDir, "journal.jsonl"))
	if err != nil {
		lock.Close()
		return nil, fmt.Errorf("local executor: journal: %w", err)
	}
	e := &Executor{
		opts:     opts,
		capacity: request{cpuMilli: int64(opts.CPUs * 1000), memBytes: opts.MemoryBytes, gpus: opts.GPUs},
		journal:  jr,
		lockFile: lock,
		jobs:     map[string]*Job{},
	}
	e.idle = sync.NewCond(&e.mu)
	return e, nil
}

// Submit queues a run. A run already queued or running returns its Job.
// meta is kept in the journal and returned by Recover (for example the
// repository and experiment the run belongs to).
func (e *Executor) Submit(c contract.Contract, meta map[string]string) (*Job, error) {
	if err := runner.Validate(c); err != nil {
		return nil, err
	}
	req, err := e.requestOf(c)
	if err != nil {
		return nil, err
	}
	for {
		e.mu.Lock()
		if e.closing {
			e.mu.Unlock()
			return nil, ErrShutdown
		}
		j, ok := e.jobs[c.RunID]
		if !ok {
			break // e.mu stays held
		}
		if j.ctx.Err() == nil {
			j.waiters++
			e.mu.Unlock()
			return j, nil
		}
		// Cancelled and still ending (up to the kill grace): this Submit
		// gets a run of its own once it ended, not its Cancelled.
		e.mu.Unlock()
		<-j.done
	}
	ctx, cancel := context.WithCancel(context.Background())
	j := &Job{RunID: c.RunID, Contract: c, Meta: meta, req: req, ctx: ctx, cancel: cancel, done: make(chan struct{}), waiters: 1}
	e.jobs[c.RunID] = j
	e.queue = append(e.queue, j)
	e.counts.Submitted++
	e.counts.Queued++
	counts := e.counts
	e.mu.Unlock()
	e.emit(Event{Kind: EventQueued, RunID: c.RunID, Counts: counts})
	e.dispatch()
	return j, nil
}

// dispatch gives queued jobs a goroutine while the pipeline has room.
func (e *Executor) dispatch() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for len(e.queue) > 0 && !e.closing && e.active-e.running < e.opts.Pipeline {
		j := e.queue[0]
		e.queue = e.queue[1:]
		e.active++
		go e.execute(j)
	}
}

// admit blocks until j is first among the waiting jobs and its request
// fits, then holds its resources until release.
func (e *Executor) admit(j *Job) func(ctx context.Context) (func(), error) {
	return func(ctx context.Context) (func(), error) {
		e.mu.Lock()
		e.waiting = append(e.waiting, j)
		stop := context.AfterFunc(ctx, func() {
			e.mu.Lock()
			e.idle.Broadcast()
			e.mu.Unlock()
		})
		defer stop()
		for !(e.waiting[0] == j && e.fits(j.req)) && ctx.Err() == nil && !e.closing {
			e.idle.Wait()
		}
		e.removeWaiting(j)
		if err := ctx.Err(); err != nil || e.closing {
			e.idle.Broadcast() // the next waiter may be first now
			e.mu.Unlock()
			if err == nil {
				err = ErrShutdown
			}
			return nil, err
		}
		e.used.cpuMilli += j.req.cpuMilli
		e.used.memBytes += j.req.memBytes
		e.used.gpus += j.req.gpus
		e.running++
		e.counts.Queued--
		e.counts.Running++
		j.started = true
		counts := e.counts
		e.idle.Broadcast()
		e.mu.Unlock()
		e.emit(Event{Kind: EventStarted, RunID: j.RunID, Counts: counts})
		e.dispatch() // a pipeline place is free
		var once sync.Once
		return func() {
			once.Do(func() {
				e.mu.Lock()
				e.used.cpuMilli -= j.req.cpuMilli
				e.used.memBytes -= j.req.memBytes
				e.used.gpus -= j.req.gpus
				e.running--
				e.counts.Running--
				e.idle.Broadcast()
				e.mu.Unlock()
			})
		}, nil
	}
}

func (e *Executor) removeWaiting(j *Job) {
	for i, w := range e.waiting {
		if w == j {
			e.waiting = append(e.waiting[:i], e.waiting[i+1:]...)
			return
		}
	}
}

func (e *Executor) fits(r request) bool {
	if e.opts.MaxConcurrent > 0 && e.running >= e.opts.MaxConcurrent {
		return false
	}
	if e.running == 0 {
		return true // requests were checked against capacity at Submit
	}
	return e.used.cpuMilli+r.cpuMilli <= e.capacity.cpuMilli && e.used.memBytes+r.memBytes <= e.capacity.memBytes &&
		e.used.gpus+r.gpus <= e.capacity.gpus
}

func (e *Executor) execute(j *Job) {
	res, err := e.runJob(j)
	e.mu.Lock()
	e.active--
	if !j.started {
		// Finished without running: cached, failed before its process
		// started, or cancelled while waiting.
		e.counts.Queued--
	}
	e.finishLocked(j, res, err)
	counts := e.counts
	e.mu.Unlock()
	e.emit(Event{Kind: EventFinished, RunID: j.RunID, Result: res, Err: err, Counts: counts})
	close(j.done)
	e.dispatch()
}

func (e *Executor) finishLocked(j *Job, res *contract.Result, err error) {
	j.result, j.err = res, err
	j.cancel()
	delete(e.jobs, j.key())
	e.counts.Finished++
	if res != nil && res.Status == contract.Succeeded {
		e.counts.Succeeded++
	}
	if res != nil && res.Cached {
		e.counts.Cached++
	}
	e.idle.Broadcast()
}

// runJob journals the run, runs it through the run cache and ends the
// record once the result is stored.
func (e *Executor) runJob(j *Job) (*contract.Result, error) {
	if j.fresh {
		return e.runFresh(j)
	}
	rec := record{RunID: j.RunID, Contract: j.Contract, Meta: j.Meta, SubmittedAt: time.Now().UTC()}
	if err := e.journal.run(rec); err != nil {
		return nil, fmt.Errorf("journal run %s: %w", j.RunID, err)
	}
	opts := e.opts.Runner
	opts.Store = e.opts.Store
	opts.Admit = e.admit(j)
	userOnStart := opts.OnStart
	opts.OnStart = func(s runner.Started) {
		// A failed update leaves the record without a group: Recover then
		// cannot end the group, but still returns the run.
		_ = e.journal.started(j.RunID, s.PID, s.StartTicks, s.Attempt)
		if userOnStart != nil {
			userOnStart(s)
		}
	}
	res, err := runner.RunCached(j.ctx, j.Contract, opts)
	// This process saw the run end, so its process group is gone: the
	// record has served its purpose whatever the outcome.
	_ = e.journal.end(j.RunID)
	return res, err
}

// Cancel cancels a queued or running run; it reports whether there was one.
func (e *Executor) Cancel(runID string) bool {
	e.mu.Lock()
	j, ok := e.jobs[runID]
	if !ok {
		e.mu.Unlock()
		return false
	}
	e.cancelAndUnlock(j)
	return true
}

// cancelAndUnlock cancels j, which e.mu (held) has in e.jobs, and releases
// e.mu. A queued job finishes at once; a running one is cancelled under the
// lock, so no Submit joins it once it is doomed.
func (e *Executor) cancelAndUnlock(j *Job) {
	for i, q := range e.queue {
		if q == j {
			e.queue = append(e.queue[:i], e.queue[i+1:]...)
			e.counts.Queued--
			res := cancelledResult(j)
			e.finishLocked(j, res, nil)
			counts := e.counts
			e.mu.Unlock()
			e.emit(Event{Kind: EventFinished, RunID: j.RunID, Result: res, Counts: counts})
			close(j.done)
			e.dispatch()
			return
		}
	}
	j.cancel() // running: the runner ends the process group
	e.mu.Unlock()
}

// Abandon withdraws one Submit's interest in j. The run is cancelled (as
// by Cancel) unless another Submit of the same run still waits for it; it
// reports whether the run goes on for those. When it does not, j's result
// (Cancelled, or whatever it finished with) follows shortly; when it does,
// the caller must not wait for it.
func (e *Executor) Abandon(j *Job) (goesOn bool) {
	e.mu.Lock()
	if e.jobs[j.key()] != j {
		e.mu.Unlock()
		return false // finished already
	}
	j.waiters--
	if j.waiters > 0 {
		e.mu.Unlock()
		return true
	}
	e.cancelAndUnlock(j)
	return false
}

func cancelledResult(j *Job) *contract.Result {
	now := time.Now().UTC()
	return &contract.Result{RunID: j.RunID, Status: contract.Cancelled, ExitCode: -1, StartedAt: now, FinishedAt: now, Error: "cancelled before it started"}
}

// Waiters reports how many Submits wait for the run now (0: no queued or
// running job), so a caller or a test can tell that callers share it.
func (e *Executor) Waiters(runID string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	if j, ok := e.jobs[runID]; ok {
		return j.waiters
	}
	return 0
}

// CancelAll cancels every queued and running run.
func (e *Executor) CancelAll() {
	e.mu.Lock()
	ids := make([]string, 0, len(e.jobs))
	for id := range e.jobs {
		ids = append(ids, id)
	}
	e.mu.Unlock()
	for _, id := range ids {
		e.Cancel(id)
	}
}

// Counts returns the current totals.
func (e *Executor) Counts() Counts {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.counts
}

// Shutdown stops admitting runs, cancels the queued ones, and waits for the
// running ones; when ctx ends first it cancels them (SIGTERM, then SIGKILL
// after the runner's grace) and waits for them to end. It releases the state
// folder.
func (e *Executor) Shutdown(ctx context.Context) error {
	e.mu.Lock()
	e.closing = true
	e.idle.Broadcast() // runs waiting for admission give up
	queued := append([]*Job(nil), e.queue...)
	e.mu.Unlock()
	for _, j := range queued {
		e.Cancel(j.key())
	}
	allDone := make(chan struct{})
	go func() {
		e.mu.Lock()
		for e.active > 0 {
			e.idle.Wait()
		}
		e.mu.Unlock()
		close(allDone)
	}()
	var err error
	select {
	case <-allDone:
	case <-ctx.Done():
		err = fmt.Errorf("shutdown: cancelled the runs still running: %w", ctx.Err())
		e.CancelAll()
		<-allDone
	}
	// The empty work folders kept for reuse go too.
	if e.opts.Runner.WorkRoot != "" {
		runner.DropPool(e.opts.Runner.WorkRoot)
	}
	e.journal.close()
	e.lockFile.Close()
	return err
}

func (e *Executor) emit(ev Event) {
	if e.opts.OnEvent == nil {
		return
	}
	e.eventMu.Lock()
	defer e.eventMu.Unlock()
	e.opts.OnEvent(ev)
}
