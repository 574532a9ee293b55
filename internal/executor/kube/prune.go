package kube

import (
	"context"
	"errors"
	"fmt"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
)

// Prune deletes the Jobs of this repository that no run needs any more,
// reading them from the cache:
//   - a Job still running whose run keep does not hold: a newer commit
//     edited or removed its experiment (while no Execute waited for it, as
//     after a restart; one that waits is cancelled with ErrSuperseded);
//   - a finished Job whose result the run cache holds, or whose run keep
//     does not hold: a controller stopped between collecting and deleting.
//
// keep must hold the runs every ref of the repository plans now: call
// Prune after planning them all, never when a ref could not be read. Runs
// Execute is waiting for are never touched. It also removes store prefixes
// a crash left: untouched for OrphanPrefixAge, with no Job in the
// namespace (another repository may share the claim) and no Execute here.
func (e *Executor) Prune(ctx context.Context, keep map[string]bool) (deleted int, err error) {
	var jobs batchv1.JobList
	err = e.cl.opts.Cache.List(ctx, &jobs, client.InNamespace(e.repo.Namespace), client.MatchingLabels{
		render.LabelManagedBy: render.ManagedBy})
	if err != nil {
		return 0, fmt.Errorf("list the Jobs of namespace %s: %w", e.repo.Namespace, err)
	}
	inFlight := map[string]bool{}
	for _, id := range e.InFlight() {
		inFlight[id] = true
	}
	withJob := map[string]bool{}
	var errs []error
	for i := range jobs.Items {
		job := &jobs.Items[i]
		runID := job.Annotations[render.AnnotationRunID]
		withJob[runID] = true
		if !e.owns(job) || inFlight[runID] || job.DeletionTimestamp != nil {
			continue
		}
		done, _ := finished(job)
		policy := metav1.DeletePropagationBackground
		switch {
		case done && (!keep[runID] || e.cached(ctx, runID)):
		case !done && !keep[runID]:
			policy = metav1.DeletePropagationForeground
		default:
			continue
		}
		if err := e.deleteJob(ctx, job.Name, job.UID, policy); err != nil {
			errs = append(errs, fmt.Errorf("delete Job %s/%s: %w", job.Namespace, job.Name, err))
			continue
		}
		deleted++
	}
	prefixes, err := e.repo.Storage.Prefixes(ctx)
	if err != nil {
		errs = append(errs, err)
	}
	for _, pre := range prefixes {
		if !withJob[pre.RunID] && !inFlight[pre.RunID] && !e.flying(pre.RunID) && time.Since(pre.Changed) > OrphanPrefixAge {
			if err := e.repo.Storage.RemovePrefix(ctx, pre.RunID); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return deleted, errors.Join(errs...)
}

// OrphanPrefixAge is how long a prefix without a Job stays before Prune
// removes it: an Execute of another repository sharing the claim makes the
// prefix a moment before its Job.
var OrphanPrefixAge = 10 * time.Minute

// owns reports whether the Job is this repository's (another repository of
// the namespace may watch the same URL).
func (e *Executor) owns(job *batchv1.Job) bool {
	for _, o := range job.OwnerReferences {
		if o.UID == e.repo.Owner.UID {
			return true
		}
	}
	return false
}

// flying reports whether an Execute of the run started since Prune listed
// them.
func (e *Executor) flying(runID string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	_, ok := e.flights[runID]
	return ok
}

func (e *Executor) cached(ctx context.Context, runID string) bool {
	_, err := runner.LoadResult(ctx, e.repo.Storage.Store(), runID)
	return err == nil
}
