package kube

import (
	"context"
	"fmt"
	"regexp"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/expsync/expsync/render"
)

// NameCollisionError is a Job name held by a Job of another run: two run
// IDs sharing their first 64 bits within one experiment, or a Job someone
// else made. The run cannot get a Job until that one is gone.
type NameCollisionError struct {
	Namespace, Name string
	// RunID is the run that wanted the name; Holder what the Job there
	// says it runs ("" when it is not expsync's).
	RunID, Holder string
}

func (e *NameCollisionError) Error() string {
	holder := "a Job expsync did not make"
	if e.Holder != "" {
		holder = "the Job of run " + e.Holder
	}
	return fmt.Sprintf("Job %s/%s, the name of run %s, is held by %s: delete that Job (kubectl delete job -n %s %s) if it is not needed",
		e.Namespace, e.Name, e.RunID, holder, e.Namespace, e.Name)
}

// QuotaError is a ResourceQuota of the namespace refusing a Job or its
// pods: the run waits, and the repository's status names the quota.
type QuotaError struct {
	Namespace string
	// Quota is the ResourceQuota's name; Message the API server's words
	// (requested, used, limited).
	Quota, Message string
	// Pods is set when the Job exists and its pods are refused.
	Pods bool
}

func (e *QuotaError) Error() string {
	what := "a Job"
	if e.Pods {
		what = "the pods of a Job"
	}
	return fmt.Sprintf("ResourceQuota %s/%s refuses %s: %s", e.Namespace, e.Quota, what, e.Message)
}

// quotaPattern finds the quota's name in the API server's refusal
// ("exceeded quota: <name>, requested: ...").
var quotaPattern = regexp.MustCompile(`exceeded quota: ([a-z0-9]([-a-z0-9.]*[a-z0-9])?)`)

// asQuotaError returns the quota refusal err is, or nil.
func asQuotaError(namespace string, err error) *QuotaError {
	if !apierrors.IsForbidden(err) {
		return nil
	}
	m := quotaPattern.FindStringSubmatch(err.Error())
	if m == nil {
		return nil
	}
	return &QuotaError{Namespace: namespace, Quota: m[1], Message: err.Error()}
}

// createOrAdopt returns the run's Job: the one in the cache when it is
// there (a controller restarted mid-run), else a new one, created once the
// repository has a free slot. release frees the slot.
func (e *Executor) createOrAdopt(ctx context.Context, run render.Run, objs render.JobObjects) (*batchv1.Job, func(), error) {
	key := e.jobKey(objs.Job.Name)
	for {
		var cached batchv1.Job
		err := e.cl.opts.Cache.Get(ctx, key, &cached)
		switch {
		case err == nil:
			job, err := e.adopt(run, &cached)
			if err != nil {
				return nil, nil, err
			}
			if job == nil {
				// Being deleted (an earlier, superseded execution): wait
				// until it is gone, then create afresh.
				if err := sleep(ctx, time.Second); err != nil {
					return nil, nil, err
				}
				continue
			}
			e.cl.observe(Observation{Kind: JobAdopted, Namespace: e.repo.Namespace, RunID: run.ID})
			return job, e.take(), nil
		case !apierrors.IsNotFound(err):
			return nil, nil, fmt.Errorf("read Job %s from the cache: %w", key, err)
		}
		release, err := e.acquire(ctx)
		if err != nil {
			return nil, nil, err
		}
		job, err := e.create(ctx, run, objs)
		if err != nil || job == nil {
			release()
			if err != nil {
				return nil, nil, err
			}
			continue // it exists but is being deleted
		}
		return job, release, nil
	}
}

// create makes the run's prefix and its Job. A Job that exists already
// (the cache had not seen it) is adopted like a cached one.
func (e *Executor) create(ctx context.Context, run render.Run, objs render.JobObjects) (*batchv1.Job, error) {
	if err := e.repo.Storage.PreparePrefix(ctx, run.ID); err != nil {
		return nil, err
	}
	job := objs.Job.DeepCopy()
	job.OwnerReferences = []metav1.OwnerReference{e.repo.Owner}
	started := time.Now()
	err := e.cl.opts.Client.Create(ctx, job)
	if err == nil {
		e.setRefusal(nil)
		e.cl.observe(Observation{Kind: JobCreated, Namespace: e.repo.Namespace, RunID: run.ID, Latency: time.Since(started)})
		return job, nil
	}
	if q := asQuotaError(e.repo.Namespace, err); q != nil {
		e.setRefusal(q)
		return nil, q
	}
	if !apierrors.IsAlreadyExists(err) {
		return nil, fmt.Errorf("create Job %s/%s of run %s: %w", job.Namespace, job.Name, run.ID, err)
	}
	var existing batchv1.Job
	if err := e.cl.opts.APIReader.Get(ctx, e.jobKey(job.Name), &existing); err != nil {
		return nil, fmt.Errorf("read Job %s/%s of run %s: %w", job.Namespace, job.Name, run.ID, err)
	}
	return e.adopt(run, &existing)
}

// adopt checks that an existing Job runs this run. It returns nil when the
// Job is being deleted (the caller waits for it to go).
func (e *Executor) adopt(run render.Run, job *batchv1.Job) (*batchv1.Job, error) {
	holder := job.Annotations[render.AnnotationRunID]
	if holder != run.ID || job.Labels[render.LabelManagedBy] != render.ManagedBy {
		if job.Labels[render.LabelManagedBy] != render.ManagedBy {
			holder = ""
		}
		return nil, &NameCollisionError{Namespace: job.Namespace, Name: job.Name, RunID: run.ID, Holder: holder}
	}
	if job.DeletionTimestamp != nil {
		return nil, nil
	}
	return job, nil
}

// acquire waits for a free slot of the repository's MaxInFlight.
func (e *Executor) acquire(ctx context.Context) (func(), error) {
	if e.slots == nil {
		return func() {}, nil
	}
	select {
	case e.slots <- struct{}{}:
		return e.releaser(), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// take counts an adopted Job against MaxInFlight without waiting: it is
// running whatever the bound says.
func (e *Executor) take() func() {
	if e.slots == nil {
		return func() {}
	}
	select {
	case e.slots <- struct{}{}:
		return e.releaser()
	default:
		return func() {}
	}
}

func (e *Executor) releaser() func() {
	var done bool
	return func() {
		if !done {
			done = true
			<-e.slots
		}
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
