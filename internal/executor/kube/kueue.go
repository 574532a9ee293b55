package kube

import (
	"context"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

// Kueue's Workload: one per queued Job, made and admitted by Kueue. Its
// versions are tried newest first (v1beta2 is stored from Kueue 0.15).
var workloadVersions = []string{"v1beta2", "v1beta1"}

// kueueJobUIDLabel is the label Kueue puts on a Job's Workload.
const kueueJobUIDLabel = "kueue.x-k8s.io/job-uid"

// queueWait records the queue a finished Job waited in and when Kueue
// admitted it: the Admitted condition of its Workload, read once (one API
// read per queued run; Workloads are not cached, as a cluster may hold
// many that are not expsync's). Without a Workload (Kueue already removed
// it), the Job's startTime stands in: the Job controller sets it when Kueue
// resumes the Job.
func (e *Executor) queueWait(ctx context.Context, job *batchv1.Job, res *contract.Result) {
	queue := job.Labels[render.LabelKueueQueue]
	if queue == "" {
		return
	}
	res.Queue = queue
	if at, ok := e.admittedAt(ctx, job); ok {
		res.AdmittedAt = at.UTC()
	} else if job.Status.StartTime != nil {
		res.AdmittedAt = job.Status.StartTime.UTC()
	}
}

func (e *Executor) admittedAt(ctx context.Context, job *batchv1.Job) (time.Time, bool) {
	for _, version := range workloadVersions {
		list := &unstructured.UnstructuredList{}
		list.SetGroupVersionKind(schema.GroupVersionKind{Group: "kueue.x-k8s.io", Version: version, Kind: "WorkloadList"})
		err := e.cl.opts.APIReader.List(ctx, list, client.InNamespace(job.Namespace),
			client.MatchingLabels{kueueJobUIDLabel: string(job.UID)})
		if err != nil {
			continue // this version is not served, or Kueue is not installed
		}
		var latest time.Time
		for _, wl := range list.Items {
			if !ownedBy(&wl, job) {
				continue
			}
			if at, ok := admittedCondition(&wl); ok && at.After(latest) {
				latest = at
			}
		}
		return latest, !latest.IsZero()
	}
	return time.Time{}, false
}

func ownedBy(obj *unstructured.Unstructured, job *batchv1.Job) bool {
	for _, o := range obj.GetOwnerReferences() {
		if o.UID == job.UID {
			return true
		}
	}
	return false
}

// admittedCondition is when the Workload was last admitted.
func admittedCondition(wl *unstructured.Unstructured) (time.Time, bool) {
	conds, _, _ := unstructured.NestedSlice(wl.Object, "status", "conditions")
	for _, c := range conds {
		m, ok := c.(map[string]any)
		if !ok || m["type"] != "Admitted" || m["status"] != "True" {
			continue
		}
		s, _ := m["lastTransitionTime"].(string)
		t, err := time.Parse(time.RFC3339, s)
		if err == nil {
			return t, true
		}
	}
	return time.Time{}, false
}
