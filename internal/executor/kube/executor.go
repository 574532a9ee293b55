package kube

import (
	"context"
	"errors"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

// Repository is what the runs of one ExperimentRepository share.
type Repository struct {
	// Owner is the ExperimentRepository (Controller set): its Jobs are
	// deleted with it by the garbage collector, and no finalizer is needed.
	Owner metav1.OwnerReference
	// Namespace is the repository's: its Jobs, the Secrets they name, the
	// store claim and the Kueue LocalQueue are all of this namespace.
	Namespace string
	// ServiceAccountName runs the pods (its token is never mounted).
	ServiceAccountName string
	// RunnerImage holds the expsync binary, pinned by digest.
	RunnerImage      string
	ImagePullSecrets []string
	// Queue and PriorityClassName apply to experiments naming none.
	Queue             string
	PriorityClassName string
	// MaxInFlight bounds the Jobs this repository has at once (0: no
	// bound). Runs beyond it wait in Execute before their Job is created.
	MaxInFlight int
	// Storage is the repository's store.
	Storage Storage
	// URL is the repository's URL (the Jobs' repository label and
	// annotation).
	URL string
	// RunAsUser is the pods' UID and GID (0: render's default).
	RunAsUser int64
}

// Executor runs the runs of one repository as Jobs. It implements the
// reconcile engine's Executor.
type Executor struct {
	cl    *Cluster
	repo  Repository
	slots chan struct{}

	mu      sync.Mutex
	flights map[string]*flight
	refusal *QuotaError
	// deleteRefusal says why the API server refuses to delete this
	// repository's Jobs ("" once a deletion works again).
	deleteRefusal string
}

// ErrSuperseded is the cause with which the engine cancels a run whose
// experiment a newer commit edited or removed (reconcile.ErrRunObsolete):
// Execute then deletes the run's Job. Any other cancellation leaves the Job
// running.
var ErrSuperseded = reconcile.ErrRunObsolete

// Superseded reports whether a cancellation's cause says the run is
// obsolete.
func Superseded(cause error) bool {
	return errors.Is(cause, ErrSuperseded)
}

var _ reconcile.Executor = (*Executor)(nil)

// Executor returns the executor of one repository.
func (c *Cluster) Executor(repo Repository) (*Executor, error) {
	switch {
	case repo.Namespace == "":
		return nil, errors.New("kube: the repository has no namespace")
	case repo.Owner.UID == "" || repo.Owner.Name == "":
		return nil, errors.New("kube: the repository has no owner reference")
	case repo.RunnerImage == "":
		return nil, errors.New("kube: no runner image")
	case repo.Storage == nil:
		return nil, errors.New("kube: no storage")
	}
	e := &Executor{cl: c, repo: repo, flights: map[string]*flight{}}
	if repo.MaxInFlight > 0 {
		e.slots = make(chan struct{}, repo.MaxInFlight)
	}
	return e, nil
}

// Store is the repository's store as the engine uses it (the
// Reconciler's Store).
func (e *Executor) Store() store.Store { return e.repo.Storage.Store() }

// jobOptions are render's options for this repository's Jobs.
func (e *Executor) jobOptions() render.JobOptions {
	opts := render.JobOptions{
		Namespace: e.repo.Namespace, RunnerImage: e.repo.RunnerImage, Repository: e.repo.URL,
		RunAsUser: e.repo.RunAsUser, ServiceAccountName: e.repo.ServiceAccountName,
		ImagePullSecrets: e.repo.ImagePullSecrets, Queue: e.repo.Queue, PriorityClassName: e.repo.PriorityClassName,
	}
	e.repo.Storage.PodOptions(&opts)
	return opts
}

// flight is one run being executed; concurrent Executes of the same run
// (two branches planning it) share it.
type flight struct {
	runID   string
	done    chan struct{}
	res     *contract.Result
	err     error
	waiters int
	// stop ends the flight's goroutine; deleteJob tells it whether to
	// delete the Job first (set before stop is called).
	stop      context.CancelFunc
	deleteJob bool
}

// Execute runs one run to its result: it creates (or adopts) the run's Job,
// waits for it through the informers and collects its result. A result
// that may stand for the run is in the run cache when Execute returns.
// Cancelling ctx returns a Cancelled result; the Job is deleted only when
// the cause is ErrSuperseded (see the package documentation).
func (e *Executor) Execute(ctx context.Context, run render.Run) (*contract.Result, error) {
	e.mu.Lock()
	f, ok := e.flights[run.ID]
	if !ok {
		fctx, stop := context.WithCancel(context.WithoutCancel(ctx))
		f = &flight{runID: run.ID, done: make(chan struct{}), stop: stop}
		e.flights[run.ID] = f
		go func() {
			defer stop()
			f.res, f.err = e.fly(fctx, f, run)
			e.mu.Lock()
			delete(e.flights, run.ID)
			e.mu.Unlock()
			close(f.done)
		}()
	}
	f.waiters++
	e.mu.Unlock()

	select {
	case <-f.done:
		return f.res, f.err
	case <-ctx.Done():
	}
	e.mu.Lock()
	f.waiters--
	last := f.waiters == 0
	if last {
		f.deleteJob = Superseded(context.Cause(ctx))
		f.stop()
	}
	e.mu.Unlock()
	if last {
		<-f.done
		if f.res != nil || f.err != nil {
			return f.res, f.err
		}
	}
	return cancelled(run, "cancelled for this branch; another branch that plans the run still waits for it"), nil
}

// fly is a flight's goroutine.
func (e *Executor) fly(ctx context.Context, f *flight, run render.Run) (*contract.Result, error) {
	objs, err := render.RenderJobObjects(run, e.jobOptions())
	if err != nil {
		return nil, err
	}
	key := types.NamespacedName{Namespace: e.repo.Namespace, Name: objs.Job.Name}
	w, unwatch := e.cl.watch(key)
	defer unwatch()
	job, release, err := e.createOrAdopt(ctx, run, objs)
	if err != nil {
		if ctx.Err() != nil {
			return cancelled(run, "cancelled before its Job was created"), nil
		}
		return nil, err
	}
	defer release()
	return e.await(ctx, f, run, objs, job, w)
}

// cancelled is the result of a run that was stopped before it ended.
func cancelled(run render.Run, why string) *contract.Result {
	now := time.Now().UTC()
	return &contract.Result{RunID: run.ID, Status: contract.Cancelled, ExitCode: -1, QueuedAt: now, StartedAt: now,
		FinishedAt: now, Error: why, SchedulingDigest: run.Contract.SchedulingDigest()}
}

// InFlight returns the IDs of the runs Execute is waiting for.
func (e *Executor) InFlight() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	out := make([]string, 0, len(e.flights))
	for id := range e.flights {
		out = append(out, id)
	}
	return out
}

// QuotaRefusal returns the latest refusal by a ResourceQuota of this
// repository's namespace (of a Job, or of the pods of one), or nil once a
// Job and its pods were accepted since.
func (e *Executor) QuotaRefusal() *QuotaError {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.refusal
}

// DeleteRefusal says why this repository's Jobs cannot be deleted (the
// API server answered 403 Forbidden: the controller's RBAC lacks delete on
// jobs.batch in the namespace), "" when the last deletion worked. Finished
// Jobs then stay, and so do the Jobs of runs a newer commit superseded,
// running on: a condition must say so.
func (e *Executor) DeleteRefusal() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.deleteRefusal
}

func (e *Executor) setRefusal(q *QuotaError) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.refusal = q
}

// jobKey names a Job of this repository.
func (e *Executor) jobKey(name string) types.NamespacedName {
	return types.NamespacedName{Namespace: e.repo.Namespace, Name: name}
}

// finished reports whether a Job reached Complete or Failed.
func finished(job *batchv1.Job) (done, failed bool) {
	for _, c := range job.Status.Conditions {
		if c.Status != "True" {
			continue
		}
		switch c.Type {
		case batchv1.JobComplete:
			return true, false
		case batchv1.JobFailed:
			return true, true
		}
	}
	return false, false
}

func jobFailure(job *batchv1.Job) (reason, message string) {
	for _, c := range job.Status.Conditions {
		if c.Type == batchv1.JobFailed && c.Status == "True" {
			return c.Reason, c.Message
		}
	}
	return "", ""
}
