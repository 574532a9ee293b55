package kube

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
)

// cacheGrace is how long a Job just created may be missing from the cache
// before it counts as deleted.
const cacheGrace = 30 * time.Second

// await follows the run's Job through the informers until it finishes, is
// deleted by someone else, gets stuck, or ctx ends.
func (e *Executor) await(ctx context.Context, f *flight, run render.Run, objs render.JobObjects, job *batchv1.Job, w *waiter) (*contract.Result, error) {
	key := e.jobKey(job.Name)
	uid := job.UID
	seen, since := false, time.Now()
	var finishedSince time.Time
	resync := time.NewTicker(e.cl.opts.Resync)
	defer resync.Stop()
	var retryCollect <-chan time.Time
	for {
		var cur batchv1.Job
		err := e.cl.opts.Cache.Get(ctx, key, &cur)
		switch {
		case err == nil && cur.UID == uid:
			seen = true
			if done, _ := finished(&cur); done {
				if finishedSince.IsZero() {
					finishedSince = time.Now()
				}
				res, err := e.finish(ctx, run, objs, &cur, time.Since(finishedSince) > cacheGrace)
				if errors.Is(err, errPodNotSeen) {
					// Its pod's last event comes next; the resync tick ends
					// the wait for a pod that is really gone.
					break
				}
				var infra *errInfrastructure
				if errors.As(err, &infra) && ctx.Err() == nil {
					// The store claim could not be read: the Job stays, and
					// collecting is tried again.
					retryCollect = time.After(e.cl.opts.Resync)
					break
				}
				return res, err
			}
			if res := e.watchPods(ctx, run, &cur); res != nil {
				return res, nil
			}
		case (err == nil || apierrors.IsNotFound(err)) && (seen || time.Since(since) > cacheGrace):
			// Deleted by someone else (a person, a namespace being
			// deleted): what ran cannot be checked. Errored, so the engine
			// holds the run and tries it again (suspend is how a run is
			// stopped for good).
			_ = e.repo.Storage.RemovePrefix(context.WithoutCancel(ctx), run.ID)
			res := cancelled(run, fmt.Sprintf("its Job %s was deleted before it finished; it runs again", key))
			res.Status = contract.Errored
			return res, nil
		case err != nil && !apierrors.IsNotFound(err) && ctx.Err() == nil:
			return nil, fmt.Errorf("read Job %s from the cache: %w", key, err)
		}
		select {
		case <-w.ch:
		case <-resync.C:
		case <-retryCollect:
		case <-ctx.Done():
			e.mu.Lock()
			del := f.deleteJob
			e.mu.Unlock()
			why := "cancelled; its Job is left running for the next controller"
			if del {
				why = "cancelled: a newer commit changed its experiment; its Job was deleted"
				if err := e.deleteJob(context.WithoutCancel(ctx), key.Name, uid, metav1.DeletePropagationForeground); err != nil {
					why = "cancelled: a newer commit changed its experiment; deleting its Job failed: " + err.Error()
				}
			}
			return cancelled(run, why), nil
		}
	}
}

// finish collects a finished Job, records a result that may stand for the
// run in the run cache, and deletes the Job and the run's prefix: the run
// cache stands for the run from then on.
func (e *Executor) finish(ctx context.Context, run render.Run, objs render.JobObjects, job *batchv1.Job, settled bool) (*contract.Result, error) {
	pods, err := e.cl.jobPods(ctx, job)
	if err != nil {
		return nil, &errInfrastructure{err}
	}
	c := &collector{ctx: ctx, storage: e.repo.Storage, run: run, objs: objs, job: job, pods: pods,
		runnerImage: e.repo.RunnerImage, podsSettled: settled}
	res, err := c.collect()
	if err != nil {
		return nil, err
	}
	e.queueWait(ctx, job, res)
	obs := Observation{Kind: Finished, Namespace: e.repo.Namespace, RunID: run.ID, Status: res.Status}
	if !res.AdmittedAt.IsZero() {
		obs.QueueWait = res.AdmittedAt.Sub(res.QueuedAt)
	}
	e.cl.observe(obs)
	if err := runner.StoreResult(ctx, e.repo.Storage.Store(), res); err != nil {
		return nil, &errInfrastructure{fmt.Errorf("run %s finished (%s) but its result could not be cached: %w", run.ID, res.Status, err)}
	}
	// The result is safe: the Job (its pods with it) and the prefix go. A
	// failure here leaves them to Prune.
	bg := context.WithoutCancel(ctx)
	if err := e.deleteJob(bg, job.Name, job.UID, metav1.DeletePropagationBackground); err == nil {
		_ = e.repo.Storage.RemovePrefix(bg, run.ID)
	}
	// A refused deletion is reported through DeleteRefusal.
	return res, nil
}

// deleteJob deletes the Job of that UID (never a newer one of the same
// name). Foreground keeps the Job until its pods are gone, so a new Job of
// the same run never shares its prefix with a pod still ending.
func (e *Executor) deleteJob(ctx context.Context, name string, uid types.UID, policy metav1.DeletionPropagation) error {
	job := &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: e.repo.Namespace, Name: name}}
	opts := &client.DeleteOptions{PropagationPolicy: &policy}
	if uid != "" {
		opts.Preconditions = &metav1.Preconditions{UID: &uid}
	}
	err := e.cl.opts.Client.Delete(ctx, job, opts)
	switch {
	case err == nil, apierrors.IsNotFound(err), apierrors.IsConflict(err):
		e.setDeleteRefusal("")
		return nil
	case apierrors.IsForbidden(err):
		e.setDeleteRefusal(fmt.Sprintf("the controller may not delete Jobs in namespace %s: grant its service account the "+
			"delete verb on jobs (group batch) there, as config/rbac/role.yaml and the chart's RBAC do; until then finished Jobs "+
			"stay and the Jobs of superseded runs keep running (%s)", e.repo.Namespace, shorten(err.Error(), 512)))
	}
	return err
}

func (e *Executor) setDeleteRefusal(msg string) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.deleteRefusal = msg
}

// stuckReasons are the reasons a container waits that only a person can
// fix: the pod would wait until the Job's deadline.
var stuckReasons = []string{"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError", "CreateContainerError"}

// watchPods looks at a running Job's pods: one stuck longer than
// StuckAfter ends the run (its Job deleted) as an infrastructure error;
// pods refused by a quota are reported (QuotaRefusal) while the Job waits.
func (e *Executor) watchPods(ctx context.Context, run render.Run, job *batchv1.Job) *contract.Result {
	if job.Spec.Suspend != nil && *job.Spec.Suspend {
		return nil // waiting for Kueue
	}
	pods, err := e.cl.jobPods(ctx, job)
	if err != nil {
		return nil
	}
	for _, p := range pods {
		if p.DeletionTimestamp != nil || time.Since(p.CreationTimestamp.Time) < e.cl.opts.StuckAfter {
			continue
		}
		for _, st := range append(append([]corev1.ContainerStatus{}, p.Status.InitContainerStatuses...), p.Status.ContainerStatuses...) {
			if wt := st.State.Waiting; wt != nil && slices.Contains(stuckReasons, wt.Reason) {
				bg := context.WithoutCancel(ctx)
				_ = e.deleteJob(bg, job.Name, job.UID, metav1.DeletePropagationForeground)
				res := cancelled(run, "")
				res.Status = contract.Errored
				res.Error = fmt.Sprintf("pod %s could not start its %s container for %s: %s: %s", p.Name, st.Name,
					e.cl.opts.StuckAfter, wt.Reason, shorten(wt.Message, 512))
				return res
			}
		}
	}
	if len(pods) == 0 && job.Status.Active == 0 {
		e.checkPodQuota(ctx, job)
	} else if q := e.QuotaRefusal(); q != nil && q.Pods {
		e.setRefusal(nil)
	}
	return nil
}

// checkPodQuota looks for the Job controller's refusal to create the
// pods of a Job that has none: a quota naming itself in the event is
// reported (QuotaRefusal) while the Job waits for room.
func (e *Executor) checkPodQuota(ctx context.Context, job *batchv1.Job) {
	var events corev1.EventList
	if err := e.cl.opts.Cache.List(ctx, &events, client.InNamespace(job.Namespace)); err != nil {
		return
	}
	var latest *corev1.Event
	for i := range events.Items {
		ev := &events.Items[i]
		if ev.InvolvedObject.UID == job.UID && quotaPattern.MatchString(ev.Message) &&
			(latest == nil || eventTime(ev).After(eventTime(latest))) {
			latest = ev
		}
	}
	if latest != nil {
		m := quotaPattern.FindStringSubmatch(latest.Message)
		e.setRefusal(&QuotaError{Namespace: job.Namespace, Quota: m[1], Message: latest.Message, Pods: true})
	}
}

func eventTime(ev *corev1.Event) time.Time {
	if !ev.LastTimestamp.IsZero() {
		return ev.LastTimestamp.Time
	}
	if !ev.EventTime.IsZero() {
		return ev.EventTime.Time
	}
	return ev.CreationTimestamp.Time
}
