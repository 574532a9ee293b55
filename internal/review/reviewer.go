package review

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/internal/forge"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/tree"
)

// Trees reads commits of the pull request's repository: ref is a full ref
// name the commit is reachable from ("" commit: the ref's head). The
// returned function releases the tree. gitsource.Source does this in serve.
type Trees func(ctx context.Context, ref, commit string) (tree.Reader, func(), error)

// Options configure a Reviewer.
type Options struct {
	Forge forge.Client
	// Context names the status (and the comment's marker): "expsync" by
	// default; two deployments reporting on one repository need two.
	Context string
	// Keys are the trusted public keys: only results they signed count.
	Keys attest.Verifiers
	// TrustedKeys, when set, gives the trusted keys at each report
	// instead of Keys: the engine's (reconcile.Reconciler.TrustedKeys)
	// wait for its signing key to be decrypted, which a report may wait
	// for but building the hook must not (a controller builds one per
	// object inside Reconcile).
	TrustedKeys func() (attest.Verifiers, error)
	// Plan plans each side's experiment files (local or kubernetes mode).
	Plan render.PlanOptions
	// Log receives one line per change of a report's fate (posted, failing,
	// recovered); nil discards. Never a token: forge errors are redacted.
	Log func(format string, args ...any)
	// RetryBase and RetryMax bound the wait after a failed post (doubling;
	// 0: 2 s and 5 minutes). PendingEvery spaces pending statuses of one
	// pull request (0: 10 s): a sweep finishing a run a second must not
	// spend the forge's rate limit.
	RetryBase, RetryMax, PendingEvery time.Duration
}

// PullRequest names the pull request a reconcile was about.
type PullRequest struct {
	Number int
	// Ref is its head ref (refs/pull/8/head) and Commit the commit
	// reconciled.
	Ref, Commit string
	// Trusted: the ref pattern's trust (untrusted pull requests that only
	// change results/ fail).
	Trusted bool
	// ResultsBranch receives the pull request's results ("": the ref
	// itself, a branch).
	ResultsBranch string
}

// Progress counts a reconcile's runs in flight.
type Progress struct {
	Planned, Done, Failed int
}

// Outcome is how a reconcile ended.
type Outcome struct {
	// Err is the reconcile's error (nil when it finished).
	Err error
	// Refused: the commit may not run (unsigned, or signed by a key that is
	// not allowed); Reason says why. PlanFailed: its experiment files do
	// not plan.
	Refused, PlanFailed bool
	Reason              string
	// Held runs could not run on this machine and wait; Cancelled were
	// stopped (a newer commit, a shutdown).
	Held, Cancelled int
}

// Reviewer posts pull-request reports in the background.
type Reviewer struct {
	o     Options
	ctx   context.Context
	stop  context.CancelFunc
	mu    sync.Mutex
	prs   map[int]*worker
	wg    sync.WaitGroup
	trees Trees
}

// New returns a Reviewer reading commits through trees. Close it to stop
// its workers.
func New(o Options, trees Trees) *Reviewer {
	if o.Context == "" {
		o.Context = "expsync"
	}
	if o.Log == nil {
		o.Log = func(string, ...any) {}
	}
	if o.RetryBase <= 0 {
		o.RetryBase = 2 * time.Second
	}
	if o.RetryMax <= 0 {
		o.RetryMax = 5 * time.Minute
	}
	if o.PendingEvery <= 0 {
		o.PendingEvery = 10 * time.Second
	}
	ctx, stop := context.WithCancel(context.Background())
	return &Reviewer{o: o, ctx: ctx, stop: stop, prs: map[int]*worker{}, trees: trees}
}

// Progress reports runs in flight: a pending status with the counts (at
// most one every PendingEvery per pull request). It never blocks.
func (r *Reviewer) Progress(pr PullRequest, p Progress) {
	r.want(pr, job{pr: pr, progress: &p})
}

// Finished reports a reconcile's end: the diff against the merge base, a
// final status and the comment. It never blocks.
func (r *Reviewer) Finished(pr PullRequest, o Outcome) {
	r.want(pr, job{pr: pr, outcome: &o})
}

// Close stops the workers; a post in progress gets until ctx ends.
func (r *Reviewer) Close(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		r.mu.Lock()
		for _, w := range r.prs {
			w.close()
		}
		r.mu.Unlock()
		r.wg.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
	}
	r.stop()
	<-done
}

// job is one state to report; the newest replaces any older one waiting.
type job struct {
	pr       PullRequest
	progress *Progress
	outcome  *Outcome
}

func (r *Reviewer) want(pr PullRequest, j job) {
	r.mu.Lock()
	defer r.mu.Unlock()
	w := r.prs[pr.Number]
	if w == nil {
		w = &worker{r: r, number: pr.Number, wake: make(chan struct{}, 1), done: make(chan struct{})}
		r.prs[pr.Number] = w
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			w.loop()
		}()
	}
	w.set(j)
}

// worker posts one pull request's reports, newest first, one at a time.
type worker struct {
	r      *Reviewer
	number int
	wake   chan struct{}
	done   chan struct{}
	once   sync.Once

	mu   sync.Mutex
	next *job
	// final is the last final job: a progress report for the same commit
	// after it (a late event) does not turn a done status back to pending.
	finalCommit string
	// lastStatus is the last status posted, not posted twice.
	lastStatus  forge.Status
	lastPending time.Time
	failing     string // the error being retried, logged once
}

func (w *worker) set(j job) {
	w.mu.Lock()
	if j.progress != nil && j.pr.Commit == w.finalCommit {
		w.mu.Unlock()
		return
	}
	if j.progress != nil && w.next != nil && w.next.outcome != nil && w.next.pr.Commit == j.pr.Commit {
		w.mu.Unlock()
		return // the final report of this commit is waiting: keep it
	}
	w.next = &j
	w.mu.Unlock()
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

func (w *worker) close() { w.once.Do(func() { close(w.done) }) }

func (w *worker) loop() {
	backoff := w.r.o.RetryBase
	for {
		select {
		case <-w.wake:
		case <-w.done:
			return
		}
		for {
			w.mu.Lock()
			j := w.next
			w.next = nil
			w.mu.Unlock()
			if j == nil {
				break
			}
			if j.progress != nil {
				if wait := w.r.o.PendingEvery - time.Since(w.lastPending); wait > 0 {
					// Too soon after the last pending status: wait, then
					// report the newest state (a final one may have come).
					w.putBack(*j)
					if !w.sleep(wait) {
						return
					}
					continue
				}
			}
			err := w.post(*j)
			if err == nil {
				backoff = w.r.o.RetryBase
				if w.failing != "" {
					w.r.o.Log("pull request %d: the forge answers again; report posted", w.number)
					w.failing = ""
				}
				continue
			}
			if msg := err.Error(); msg != w.failing {
				w.r.o.Log("pull request %d: report not posted (retried with backoff; results are committed regardless): %v", w.number, err)
				w.failing = msg
			}
			w.putBack(*j)
			if !w.sleep(backoff) {
				return
			}
			backoff = min(2*backoff, w.r.o.RetryMax)
		}
	}
}

// putBack queues j again unless a newer job came meanwhile.
func (w *worker) putBack(j job) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.next == nil {
		w.next = &j
	}
}

// sleep waits d, or until the Reviewer closes (false).
func (w *worker) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-w.done:
		return false
	}
}

func (w *worker) post(j job) error {
	ctx := w.r.ctx
	if j.progress != nil {
		p := *j.progress
		w.lastPending = time.Now()
		return w.status(ctx, forge.Status{Commit: j.pr.Commit, State: forge.StatePending,
			Description: fmt.Sprintf("%d of %d runs done, %d failed", p.Done, p.Planned, p.Failed)})
	}
	rep, err := w.r.report(ctx, j.pr, *j.outcome)
	if err != nil {
		return err
	}
	// The comment first: once the status is final, the comment a reviewer
	// opens from it already shows what the status says.
	if rep.comment != "" {
		c, err := w.r.o.Forge.UpsertComment(ctx, j.pr.Number, forge.Marker(w.r.o.Context), rep.comment)
		if err != nil {
			return err
		}
		if c.Created || c.Edited {
			w.r.o.Log("pull request %d: %s; comment %s", w.number, rep.status.Description, c.URL)
		}
	}
	if err := w.status(ctx, rep.status); err != nil {
		return err
	}
	if rep.status.State != forge.StatePending {
		w.mu.Lock()
		w.finalCommit = j.pr.Commit
		w.mu.Unlock()
	}
	return nil
}

// status posts s unless it is the last one posted.
func (w *worker) status(ctx context.Context, s forge.Status) error {
	s.Context = w.r.o.Context
	if s == w.lastStatus {
		return nil
	}
	if err := w.r.o.Forge.SetStatus(ctx, s); err != nil {
		return err
	}
	w.lastStatus = s
	return nil
}
