package kube

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	toolscache "k8s.io/client-go/tools/cache"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

// Options configure a Cluster.
type Options struct {
	// Client writes (creates and deletes Jobs); with a controller-runtime
	// manager, mgr.GetClient(). Its reads are not used: Jobs and pods are
	// read from Cache.
	Client client.Client
	// APIReader reads what the cache does not hold, rarely: a Job that
	// already existed when the cache had not seen it yet, the Kueue
	// Workload of a queued run once it ends. mgr.GetAPIReader(); nil uses
	// Client.
	APIReader client.Reader
	// Cache is the informer cache, built with CacheOptions (mgr.GetCache()).
	// It must be started by its owner (the manager).
	Cache cache.Cache
	// StuckAfter is how long a pod may wait with a reason that needs a
	// person (an image that cannot be pulled, a missing Secret) before the
	// run ends as an infrastructure error and its Job is deleted (default
	// 10 minutes); the engine tries the run again later.
	StuckAfter time.Duration
	// Resync is how often a waiting run re-reads its Job from the cache
	// even without an event (default 1 minute): a safety net that costs no
	// API request.
	Resync time.Duration
	// Observe, when set, receives a run's steps for metrics. It is called
	// from the executors' goroutines and must not block.
	Observe func(Observation)
}

// ObservationKind is a step of a run's life.
type ObservationKind string

const (
	// JobCreated: Execute created the run's Job; Latency is the request.
	JobCreated ObservationKind = "JobCreated"
	// JobAdopted: Execute found the run's Job (a restarted controller).
	JobAdopted ObservationKind = "JobAdopted"
	// Finished: the run's result was collected; QueueWait is set for runs
	// Kueue admitted.
	Finished ObservationKind = "Finished"
)

// Observation reports one step of one run.
type Observation struct {
	Kind             ObservationKind
	Namespace, RunID string
	Latency          time.Duration
	QueueWait        time.Duration
	Status           contract.Status
}

func (c *Cluster) observe(o Observation) {
	if c.opts.Observe != nil {
		c.opts.Observe(o)
	}
}

// Cluster is what every repository's executor shares: the client, the
// informers and the waiters they wake.
type Cluster struct {
	opts Options

	mu      sync.Mutex
	waiters map[types.NamespacedName]map[*waiter]struct{}
}

// waiter is one Execute waiting for its Job to change.
type waiter struct {
	ch chan struct{}
}

// New registers the Cluster's event handlers on the cache's Job and pod
// informers. Call it before the cache starts, or at any time after: the
// handlers see every object the informers hold.
func New(ctx context.Context, opts Options) (*Cluster, error) {
	if opts.Client == nil || opts.Cache == nil {
		return nil, errors.New("kube: a client and a cache are required")
	}
	if opts.APIReader == nil {
		opts.APIReader = opts.Client
	}
	if opts.StuckAfter <= 0 {
		opts.StuckAfter = 10 * time.Minute
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Minute
	}
	c := &Cluster{opts: opts, waiters: map[types.NamespacedName]map[*waiter]struct{}{}}
	for _, obj := range []client.Object{&batchv1.Job{}, &corev1.Pod{}, &corev1.Event{}} {
		inf, err := opts.Cache.GetInformer(ctx, obj)
		if err != nil {
			return nil, fmt.Errorf("kube: informer for %T: %w", obj, err)
		}
		if _, err := inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    c.onEvent,
			UpdateFunc: func(_, obj any) { c.onEvent(obj) },
			DeleteFunc: c.onEvent,
		}); err != nil {
			return nil, fmt.Errorf("kube: watch %T: %w", obj, err)
		}
	}
	return c, nil
}

// managedBy selects what expsync creates: its Jobs and, through the pod
// template's labels, their pods.
var managedBy = labels.SelectorFromSet(labels.Set{render.LabelManagedBy: render.ManagedBy})

// refusedPods selects the events the Job controller records when it cannot
// create a Job's pods (a ResourceQuota refusing them, among others): rare,
// so watching them costs nothing while no quota bites.
var refusedPods = fields.SelectorFromSet(fields.Set{"involvedObject.kind": "Job", "reason": "FailedCreate"})

// CacheOptions are the cache settings the Cluster needs, to merge into the
// manager's cache.Options.ByObject: only expsync's Jobs and pods are held,
// and without what a controller never reads back (managed fields, the
// contract in the pod template), so holding 10,000 runs costs little
// memory; of events, only the Job controller's refusals to create pods.
func CacheOptions() map[client.Object]cache.ByObject {
	return map[client.Object]cache.ByObject{
		&batchv1.Job{}:  {Label: managedBy, Transform: trimJob},
		&corev1.Pod{}:   {Label: managedBy, Transform: trimPod},
		&corev1.Event{}: {Field: refusedPods, Transform: trimMeta},
	}
}

func trimMeta(obj any) (any, error) {
	if o, ok := obj.(metav1.Object); ok {
		o.SetManagedFields(nil)
	}
	return obj, nil
}

func trimJob(obj any) (any, error) {
	if j, ok := obj.(*batchv1.Job); ok {
		j.ManagedFields = nil
		delete(j.Spec.Template.Annotations, render.AnnotationContract)
	}
	return obj, nil
}

func trimPod(obj any) (any, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		p.ManagedFields = nil
		delete(p.Annotations, render.AnnotationContract)
	}
	return obj, nil
}

// onEvent wakes the waiters of the Job an object belongs to.
func (c *Cluster) onEvent(obj any) {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	var key types.NamespacedName
	switch o := obj.(type) {
	case *batchv1.Job:
		key = types.NamespacedName{Namespace: o.Namespace, Name: o.Name}
	case *corev1.Pod:
		name := o.Labels[batchv1.JobNameLabel]
		if name == "" {
			return
		}
		key = types.NamespacedName{Namespace: o.Namespace, Name: name}
	case *corev1.Event:
		key = types.NamespacedName{Namespace: o.InvolvedObject.Namespace, Name: o.InvolvedObject.Name}
	default:
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for w := range c.waiters[key] {
		select {
		case w.ch <- struct{}{}:
		default: // a wake-up is pending already
		}
	}
}

// watch registers a waiter for the Job key; stop unregisters it.
func (c *Cluster) watch(key types.NamespacedName) (w *waiter, stop func()) {
	w = &waiter{ch: make(chan struct{}, 1)}
	c.mu.Lock()
	if c.waiters[key] == nil {
		c.waiters[key] = map[*waiter]struct{}{}
	}
	c.waiters[key][w] = struct{}{}
	c.mu.Unlock()
	return w, func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		delete(c.waiters[key], w)
		if len(c.waiters[key]) == 0 {
			delete(c.waiters, key)
		}
	}
}

// jobPods lists the cached pods of a Job, by the controller-uid label the
// Job controller sets (a pod of an earlier Job of the same name never
// counts).
func (c *Cluster) jobPods(ctx context.Context, job *batchv1.Job) ([]corev1.Pod, error) {
	var pods corev1.PodList
	err := c.opts.Cache.List(ctx, &pods, client.InNamespace(job.Namespace),
		client.MatchingLabels{batchv1.ControllerUidLabel: string(job.UID)})
	return pods.Items, err
}
