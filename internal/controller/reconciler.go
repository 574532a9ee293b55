// Package controller reconciles ExperimentRepository objects: it polls
// each repository through the same engine as `expsync serve` (reconcile:
// planning, the run cache, batching, commit-back), runs new runs through
// an executor of the object's namespace (executor/kube: Jobs), and keeps a
// bounded kstatus status, Flux-style events and Prometheus metrics.
//
// Reconcile is a short sequence of named steps; the long work (a commit's
// runs, hours perhaps) happens in the engine's ref workers, which wake the
// object's Reconcile when they progress.
package controller

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	helper "github.com/fluxcd/pkg/runtime/controller"
	"github.com/fluxcd/pkg/runtime/events"
	"github.com/fluxcd/pkg/runtime/jitter"
	"github.com/fluxcd/pkg/runtime/patch"
	"github.com/fluxcd/pkg/runtime/predicates"
	runtimereconcile "github.com/fluxcd/pkg/runtime/reconcile"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	kerrors "k8s.io/apimachinery/pkg/util/errors"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/controller"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/deploy"
	"github.com/expsync/expsync/internal/logging"
	"github.com/expsync/expsync/reconcile"
	"github.com/expsync/expsync/render"
)

// ownedConditions are the conditions this controller writes.
var ownedConditions = []string{
	meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition,
	v1alpha1.FetchFailedCondition, v1alpha1.NotVerifiedCondition, v1alpha1.InvalidExperimentsCondition,
	v1alpha1.PushFailedCondition, v1alpha1.SigningFailedCondition, v1alpha1.JobsNotDeletedCondition,
}

// ExecutorName names the Job executor in run.json.
const ExecutorName = "kubernetes"

// Settings are the controller-wide defaults and tunables.
type Settings struct {
	// StateDir holds each repository's Git cache (StateDir/<uid>).
	StateDir string
	// BuilderID names the deployment in statements when the object names none.
	BuilderID string
	// BatchInterval is how often finished runs are committed (0: 10s).
	BatchInterval time.Duration
	// ProgressInterval is the least time between two status updates
	// caused by runs finishing (0: 10s): a thousand runs finishing must
	// not cost a thousand status writes.
	ProgressInterval time.Duration
	// SecretsTTL is how long a read of the Secrets an object names (Git
	// credentials, commit signing, verification, attestation and trusted
	// keys) is used before a reconcile reads them again (0: 5 minutes). A spec
	// change or reconcile.fluxcd.io/requestedAt reads them at once; a
	// failing poll does not (a repository whose server is gone read them
	// at every retry). Reading them at every reconcile cost one GET per object per
	// interval: 10,000 objects polled every minute need 167 requests/s,
	// over --kube-api-qps 50, and the polls fell behind the interval.
	SecretsTTL time.Duration
	// RetryDelay is the first wait after a failed listing of a
	// repository's refs (0: 750ms, Flux's --min-retry-delay); each further
	// failure doubles it, up to the object's interval.
	RetryDelay time.Duration
}

// Reconciler reconciles ExperimentRepository objects.
type Reconciler struct {
	client.Client
	// APIReader reads Secrets from the API server (never from a cache).
	APIReader     client.Reader
	EventRecorder events.Recorder
	Metrics       helper.Metrics
	Own           *Metrics
	// ControllerName is the field manager of status patches.
	ControllerName string
	Executors      ExecutorFactory
	Settings       Settings

	mu    sync.Mutex
	repos map[types.NamespacedName]*repoState
	// wake carries progress of the engine back into Reconcile.
	wake   chan event.GenericEvent
	timers map[types.NamespacedName]*time.Timer
	ctx    context.Context
}

// SetupWithManager registers the controller: it reconciles on a spec
// change (generation), on reconcile.fluxcd.io/requestedAt, on the
// interval (requeue with jitter) and when the engine progresses.
func (r *Reconciler) SetupWithManager(ctx context.Context, mgr ctrl.Manager, opts controller.Options) error {
	r.repos = map[types.NamespacedName]*repoState{}
	r.timers = map[types.NamespacedName]*time.Timer{}
	r.wake = make(chan event.GenericEvent, 1024)
	r.ctx = ctx
	if r.Settings.ProgressInterval <= 0 {
		r.Settings.ProgressInterval = 10 * time.Second
	}
	if r.Settings.SecretsTTL <= 0 {
		r.Settings.SecretsTTL = 5 * time.Minute
	}
	if r.Settings.RetryDelay <= 0 {
		r.Settings.RetryDelay = 750 * time.Millisecond // Flux's --min-retry-delay
	}
	if err := mgr.Add(stopper{r}); err != nil {
		return err
	}
	return ctrl.NewControllerManagedBy(mgr).
		For(&v1alpha1.ExperimentRepository{}, builder.WithPredicates(
			predicate.Or(predicate.GenerationChangedPredicate{}, predicates.ReconcileRequestedPredicate{}))).
		WatchesRawSource(source.Channel(r.wake, &handler.EnqueueRequestForObject{})).
		WithOptions(opts).
		Complete(r)
}

// stopper stops every repository's workers when the manager stops (or
// loses leadership): their runs are left running for the next leader.
type stopper struct{ r *Reconciler }

func (s stopper) Start(ctx context.Context) error {
	<-ctx.Done()
	s.r.mu.Lock()
	repos := s.r.repos
	s.r.repos = map[types.NamespacedName]*repoState{}
	s.r.mu.Unlock()
	var wg sync.WaitGroup
	for _, st := range repos {
		wg.Add(1)
		go func() { defer wg.Done(); st.stop(errShutdown) }()
	}
	wg.Wait()
	return nil
}

// NeedLeaderElection: only the leader runs workers.
func (stopper) NeedLeaderElection() bool { return true }

// Reconcile runs the named steps for one ExperimentRepository.
func (r *Reconciler) Reconcile(ctx context.Context, req ctrl.Request) (result ctrl.Result, retErr error) {
	start := time.Now()
	obj := &v1alpha1.ExperimentRepository{}
	if err := r.Get(ctx, req.NamespacedName, obj); err != nil {
		if apierrors.IsNotFound(err) {
			// No finalizer: its Jobs go with it through their owner
			// reference, whether this controller runs or not.
			r.forget(req.NamespacedName, errDeleted, true)
		}
		return ctrl.Result{}, client.IgnoreNotFound(err)
	}
	if !obj.DeletionTimestamp.IsZero() {
		r.forget(req.NamespacedName, errDeleted, true)
		return ctrl.Result{}, nil
	}
	oldObj := obj.DeepCopy()
	sp := patch.NewSerialPatcher(obj, r.Client)
	defer func() {
		finalize(obj, retErr)
		opts := runtimereconcile.AddPatchOptions(obj, nil, ownedConditions, r.ControllerName)
		if err := sp.Patch(ctx, obj, opts...); err != nil {
			retErr = kerrors.NewAggregate([]error{retErr, client.IgnoreNotFound(err)})
		}
		if retErr != nil {
			result = ctrl.Result{}
		}
		r.mu.Lock()
		st := r.repos[req.NamespacedName]
		r.mu.Unlock()
		r.notify(oldObj, obj, st)
		r.notifyJobsNotDeleted(ctx, oldObj, obj)
		r.Metrics.RecordDuration(ctx, obj, start)
		r.Metrics.RecordSuspend(ctx, obj, obj.Spec.Suspend)
		// Ready only: Flux's gauge is 4 series (True, False, Unknown,
		// Deleted) per condition type and object, and those of Stalled and
		// Reconciling were 8 of the ~20 series each object cost (a
		// quarter of an idle fleet's heap). Ready's reason says Stalled;
		// the dashboard and Flux's alerts read Ready.
		r.Metrics.RecordReadiness(ctx, obj)
	}()

	if obj.Spec.Suspend {
		// New runs and commits stop; Jobs in flight go on and are adopted
		// on resume.
		r.forget(req.NamespacedName, errSuspended, false)
		return ctrl.Result{}, nil
	}
	st, err := r.reconcileEngine(ctx, obj)
	if err != nil {
		return ctrl.Result{}, err
	}
	if st == nil { // stalled: only a spec change helps
		return ctrl.Result{RequeueAfter: obj.GetRequeueAfter()}, nil
	}
	next := r.reconcileSource(ctx, obj, st)
	r.reconcileStatus(obj, st)
	r.prune(ctx, st)
	r.recordMetrics(obj, st)
	return ctrl.Result{RequeueAfter: next}, nil
}

// reconcileEngine returns the object's engine, building it on first sight
// and rebuilding it when the spec or the Secrets it reads changed. It
// returns nil with the object marked Stalled when the spec cannot work.
func (r *Reconciler) reconcileEngine(ctx context.Context, obj *v1alpha1.ExperimentRepository) (*repoState, error) {
	key := client.ObjectKeyFromObject(obj)
	if err := checkSpec(obj); err != nil {
		r.forget(key, errReconfigured, false)
		conditions.MarkStalled(obj, v1alpha1.InvalidSpecReason, "%s", bounded(err.Error()))
		conditions.MarkFalse(obj, meta.ReadyCondition, v1alpha1.InvalidSpecReason, "%s", bounded(err.Error()))
		conditions.Delete(obj, meta.ReconcilingCondition)
		return nil, nil
	}
	r.mu.Lock()
	st := r.repos[key]
	r.mu.Unlock()
	if st != nil && st.credentialsFresh(obj, r.Settings.SecretsTTL) {
		return st, nil
	}
	creds, err := readCredentials(ctx, r.APIReader, obj)
	if err != nil {
		if errors.Is(err, ErrSecret) {
			conditions.MarkFalse(obj, meta.ReadyCondition, v1alpha1.SecretNotFoundReason, "%s", bounded(err.Error()))
			conditions.MarkTrue(obj, meta.ReconcilingCondition, meta.ProgressingWithRetryReason, "%s", bounded(err.Error()))
		}
		return nil, err
	}
	if st != nil && st.uid == obj.UID && st.generation == obj.Generation && st.versions == creds.versions {
		st.mu.Lock()
		st.secretsRead = time.Now()
		st.mu.Unlock()
		return st, nil
	}
	if st != nil {
		r.forget(key, errReconfigured, st.uid != obj.UID)
	}
	st, err = r.newState(obj, creds)
	var stall *stallError
	if errors.As(err, &stall) {
		conditions.MarkStalled(obj, stall.Reason, "%s", bounded(stall.Error()))
		conditions.MarkFalse(obj, meta.ReadyCondition, stall.Reason, "%s", bounded(stall.Error()))
		conditions.Delete(obj, meta.ReconcilingCondition)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	r.mu.Lock()
	r.repos[key] = st
	r.mu.Unlock()
	return st, nil
}

// newState builds a repository's executor, its deployment (deploy.Open,
// as serve and run assemble theirs: the Job executor, the store on the
// repository's claim, the attestation key from its Secret or KMS), its Git
// source and the ref workers.
func (r *Reconciler) newState(obj *v1alpha1.ExperimentRepository, creds *credentials) (*repoState, error) {
	key := client.ObjectKeyFromObject(obj)
	repo, err := gitRepository(obj, creds)
	if err != nil {
		return nil, err
	}
	ex, err := r.Executors(obj)
	if err != nil {
		return nil, err
	}
	signingKey, loadSigner, err := signingKey(obj, creds)
	if err != nil {
		return nil, err
	}
	forgeClient, err := newForgeClient(obj, creds)
	if err != nil {
		return nil, err
	}
	builder := obj.Spec.Attestation.BuilderID
	if builder == "" {
		builder = r.Settings.BuilderID
	}
	st := &repoState{key: key, uid: obj.UID, generation: obj.Generation, versions: creds.versions, interval: obj.GetRequeueAfter(),
		exec: ex, order: refOrder(obj), progress: map[string]*refProgress{}, notified: map[string]string{}, refused: map[string]string{},
		secretsRead: time.Now()}
	author := gitsource.Signature{Name: "expsync", Email: "expsync@localhost"}
	if c := obj.Spec.Commit; c != nil && c.Author != nil {
		author = gitsource.Signature{Name: c.Author.Name, Email: c.Author.Email}
	}
	d, err := deploy.Open(r.ctx, deploy.Options{
		Store: ex.Store(), StateDir: filepath.Join(r.Settings.StateDir, string(obj.UID)),
		Plan: &render.PlanOptions{Mode: v1alpha1.ModeKubernetes, StoreURL: ex.StoreURL()},
		Key:  signingKey, LoadSigner: loadSigner, Verifiers: creds.trusted,
		BuilderID: builder, BatchInterval: r.Settings.BatchInterval,
		Author: author, CommitSigner: creds.commitSigner.Signer,
		Executor: ex, ExecutorName: ExecutorName,
		Events: func(e reconcile.Event) {
			st.onEvent(e)
			if st.review != nil {
				st.review.Event(e)
			}
			r.progressed(key, e)
		},
	})
	if err != nil {
		return nil, err
	}
	if st.src, err = d.Source(repo); err != nil {
		return nil, err
	}
	st.engine = d.Reconciler
	// A run the cluster refuses now (quota, missing Secret) is held and
	// tried again after one interval, then two, four...
	st.engine.Retry = reconcile.RetryPolicy{Base: st.interval}
	st.engine.RunValidExperiments = true
	if c := obj.Spec.Commit; c != nil && c.MessageTemplate != "" {
		st.engine.CommitMessage, _ = messageTemplate(c.MessageTemplate) // checked by checkSpec
	}
	log := ctrl.LoggerFrom(r.ctx).WithValues("experimentrepository", key.String())
	if forgeClient != nil {
		st.review = newReviewHook(st, forgeClient, obj.Spec.Forge.Context, logging.Redacting(logging.FromLogr(log), creds.Secrets()))
	}
	st.workers = reconcile.NewWorkers(r.ctx, st.engine, st.src, d.Refs.ReconcileRef, reconcile.WorkersOptions{
		// Errors from go-git or the server may quote a credential.
		Logger: logging.Redacting(logging.FromLogr(log.V(1)), creds.Secrets()),
		Finished: func(ref string, ch gitsource.RefChange, rep *reconcile.Report, err error) {
			st.finished(ref, ch, rep, err)
			if st.review != nil {
				st.review.Finished(ch, rep, err)
			}
			r.wakeNow(key)
			// The worker still counts as busy while Finished runs: the
			// Reconcile woken above may see it so and say Reconciling
			// until the next interval (an hour, for some objects).
			go r.wakeWhenIdle(key, st, ref)
		},
	})
	return st, nil
}

// reconcileSource lists the repository's refs when a poll is due (the
// interval passed, a spec change, reconcile.fluxcd.io/requestedAt, or after
// a failed listing its backoff) and hands new commits to the workers. It
// returns when to come back.
//
// A failed listing (server down, credentials refused) is not returned as
// an error: controller-runtime would log it with a stack trace at every
// retry, and every wake-up of the object (its runs progressing) would run
// the failing path again. It is retried after 1, 2, 4... times
// Settings.RetryDelay, never later than the interval (Flux's exponential
// retry, bounded by the poll it stands for); the status and a log line say
// what failed, on change only.
func (r *Reconciler) reconcileSource(ctx context.Context, obj *v1alpha1.ExperimentRepository, st *repoState) time.Duration {
	requested, _ := meta.ReconcileAnnotationValue(obj.GetAnnotations())
	st.mu.Lock()
	due := st.pollDue(requested, time.Now())
	st.mu.Unlock()
	if due {
		_, err := st.workers.Poll(ctx)
		// A repository without commits is a new one, not a failure: its
		// first push is the news.
		empty := errors.Is(err, gitsource.ErrEmptyRepository)
		if empty {
			err = nil
		}
		st.mu.Lock()
		was, wasEmpty := st.pollErr, st.empty
		st.polled(err, empty, requested, r.Settings.RetryDelay, time.Now())
		retryAt := st.retryAt
		st.mu.Unlock()
		log := ctrl.LoggerFrom(ctx)
		switch {
		case err != nil && was == nil:
			log.Error(err, "cannot list the repository's refs; retrying with backoff", "url", gitsource.RedactURL(obj.Spec.URL), "retryAt", retryAt)
		case err != nil:
			// The same outage: logged when it began (and the status says
			// the latest error).
			log.V(1).Info("listing the repository's refs failed again", "error", err.Error(), "retryAt", retryAt)
		case err == nil && was != nil:
			log.Info("the repository's refs are listed again", "url", gitsource.RedactURL(obj.Spec.URL))
		case empty && !wasEmpty:
			log.Info("the repository has no commits yet; polling for the first one", "url", gitsource.RedactURL(obj.Spec.URL))
		}
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.pollErr != nil {
		return max(time.Until(st.retryAt), time.Second)
	}
	wait := time.Until(st.lastPoll.Add(st.interval))
	if wait <= 0 {
		wait = st.interval
	}
	return jitter.JitteredIntervalDuration(wait)
}

// reconcileStatus writes the refs and conditions from the engine's state.
func (r *Reconciler) reconcileStatus(obj *v1alpha1.ExperimentRepository, st *repoState) {
	views := st.views()
	setRefs(obj, views)
	summarize(obj, views)
	st.mu.Lock()
	pollErr, empty, interval := st.pollErr, st.empty, st.interval
	st.mu.Unlock()
	switch {
	case pollErr != nil:
		// The refs above are the last listed; a retry will do.
		msg := bounded(fmt.Sprintf("list refs of %s: %s", gitsource.RedactURL(obj.Spec.URL), pollErr))
		conditions.Delete(obj, meta.StalledCondition)
		conditions.MarkTrue(obj, v1alpha1.FetchFailedCondition, v1alpha1.FetchFailedReason, "%s", msg)
		conditions.MarkFalse(obj, meta.ReadyCondition, v1alpha1.FetchFailedReason, "%s", msg)
		conditions.MarkTrue(obj, meta.ReconcilingCondition, meta.ProgressingWithRetryReason, "%s", msg)
	}
	if msg := st.exec.DeleteRefusal(); msg != "" {
		conditions.MarkTrue(obj, v1alpha1.JobsNotDeletedCondition, v1alpha1.DeleteForbiddenReason, "%s", bounded(msg))
	} else {
		conditions.Delete(obj, v1alpha1.JobsNotDeletedCondition)
	}
	switch {
	case empty && len(views) == 0:
		// Nothing to run, nothing failed: Ready, so a health check of a
		// new repository's object does not wait for its first push.
		conditions.MarkTrue(obj, meta.ReadyCondition, v1alpha1.EmptyRepositoryReason,
			"the repository has no commits yet: its first push is reconciled within %s", interval)
	}
}

// prune deletes the Jobs of runs no ref plans any more, once every ref
// seen was planned in this process (a ref not planned yet after a restart
// would otherwise lose its Jobs).
func (r *Reconciler) prune(ctx context.Context, st *repoState) {
	states := st.workers.Refs()
	st.mu.Lock()
	keep := map[string]bool{}
	complete := !st.pruned
	for _, rs := range states {
		if rs.Seen.Deleted() {
			continue
		}
		p := st.progress[rs.Ref]
		if p == nil || p.runIDs == nil || rs.Busy {
			complete = false
			break
		}
		for id := range p.runIDs {
			keep[id] = true
		}
	}
	st.mu.Unlock()
	if !complete {
		return
	}
	if err := st.exec.Prune(ctx, keep); err != nil {
		if st.exec.DeleteRefusal() != "" {
			// Said once by JobsNotDeleted (notifyJobsNotDeleted), not at
			// every reconcile.
			ctrl.LoggerFrom(ctx).V(1).Info("prune Jobs no ref plans", "error", err.Error())
			return
		}
		ctrl.LoggerFrom(ctx).Error(err, "prune Jobs no ref plans")
		return
	}
	st.mu.Lock()
	st.pruned = true
	st.mu.Unlock()
}

// forget stops a repository's workers with cause (their Jobs keep
// running) and, when the object is gone, removes its Git cache.
func (r *Reconciler) forget(key types.NamespacedName, cause error, gone bool) {
	r.mu.Lock()
	st := r.repos[key]
	delete(r.repos, key)
	if t := r.timers[key]; t != nil {
		t.Stop()
		delete(r.timers, key)
	}
	r.mu.Unlock()
	if st == nil {
		return
	}
	st.stop(cause)
	if gone {
		_ = os.RemoveAll(filepath.Join(r.Settings.StateDir, string(st.uid)))
		if r.Own != nil {
			r.Own.forget(key.Namespace, key.Name)
		}
	}
}

// progressed wakes the object's Reconcile when a commit was planned or
// runs finished, at most once per ProgressInterval.
func (r *Reconciler) progressed(key types.NamespacedName, e reconcile.Event) {
	if r.Own != nil && e.Kind == reconcile.EventRunFinished && e.Status != "" && e.Status != "Cancelled" {
		r.Own.runFinished(key.Namespace, key.Name, e)
	}
	switch e.Kind {
	case reconcile.EventPlanned, reconcile.EventRunFinished, reconcile.EventRunHeld, reconcile.EventCommitted, reconcile.EventCommitFailed:
	default:
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.timers[key] != nil {
		return
	}
	r.timers[key] = time.AfterFunc(r.Settings.ProgressInterval, func() {
		r.mu.Lock()
		delete(r.timers, key)
		r.mu.Unlock()
		r.wakeNow(key)
	})
}

// wakeWhenIdle wakes the object's Reconcile once the ref's worker is no
// longer busy (it gives up after a minute: a newer commit keeps it busy,
// and that reconcile's end wakes the object again).
func (r *Reconciler) wakeWhenIdle(key types.NamespacedName, st *repoState, ref string) {
	for range 600 {
		time.Sleep(100 * time.Millisecond)
		idle := true
		for _, rs := range st.workers.Refs() {
			if rs.Ref == ref && rs.Busy {
				idle = false
			}
		}
		if idle {
			r.wakeNow(key)
			return
		}
	}
}

// wakeNow queues a Reconcile of the object (a ref's reconcile ended).
func (r *Reconciler) wakeNow(key types.NamespacedName) {
	obj := &v1alpha1.ExperimentRepository{}
	obj.Namespace, obj.Name = key.Namespace, key.Name
	select {
	case r.wake <- event.GenericEvent{Object: obj}:
	default:
		// The queue is full of wake-ups: this one's Reconcile is due anyway.
	}
}

// recordMetrics sets the runs gauge from the status.
func (r *Reconciler) recordMetrics(obj *v1alpha1.ExperimentRepository, st *repoState) {
	if r.Own == nil {
		return
	}
	var c v1alpha1.RunCounts
	for _, ref := range obj.Status.Refs {
		c.Planned += ref.Runs.Planned
		c.Succeeded += ref.Runs.Succeeded
		c.Failed += ref.Runs.Failed
		c.Running += ref.Runs.Running
		c.Held += ref.Runs.Held
	}
	for phase, n := range map[string]int32{"planned": c.Planned, "succeeded": c.Succeeded, "failed": c.Failed, "running": c.Running, "held": c.Held} {
		// A phase without runs has no series (sum by phase reads it as
		// none): an idle repository keeps 2 series instead of 5.
		if n == 0 {
			r.Own.Runs.DeleteLabelValues(obj.Namespace, obj.Name, phase)
			continue
		}
		r.Own.Runs.WithLabelValues(obj.Namespace, obj.Name, phase).Set(float64(n))
	}
	pushes := st.src.Stats().Pushes
	st.mu.Lock()
	delta := pushes - st.pushes
	st.pushes = pushes
	st.mu.Unlock()
	if delta > 0 {
		r.Own.PushAttempts.WithLabelValues(obj.Namespace, obj.Name, "attempt").Add(float64(delta))
	}
}

// notify sends events on changes only (Flux's metadata, so
// notification-controller can forward them and set commit statuses):
//   - a ref whose commit is done (every run's result committed): Normal,
//     with <group>/revision <ref>@sha1:<hex> and <group>/commit_status
//     update, once per results commit;
//   - Ready turning False, or its reason or message changing: Warning;
//   - Ready back to True after False: Normal.
func (r *Reconciler) notify(oldObj, obj *v1alpha1.ExperimentRepository, st *repoState) {
	if r.EventRecorder == nil {
		return
	}
	prefix := v1alpha1.Group + "/"
	if st != nil {
		for _, ref := range obj.Status.Refs {
			st.mu.Lock()
			p := st.progress[ref.Name]
			// Terminal: every planned run's result is committed (the
			// experiments that do not load never run; their warning is
			// Ready's).
			done := p != nil && p.finished && p.commit != "" && ref.ObservedCommit == revision(ref.Name, p.commit) &&
				ref.Runs.Running == 0 && ref.Runs.Held == 0 && p.pushErr == "" && p.signErr == "" && p.err == "" &&
				ref.Runs.Planned > 0 && ref.Runs.Succeeded+ref.Runs.Failed >= ref.Runs.Planned
			// One event per results commit: a commit whose runs were all
			// done already (expsync's own results commit, seen at the next
			// poll) announces nothing new.
			already := ref.LastResultsCommit == "" || st.notified[ref.Name] == ref.LastResultsCommit
			if done {
				st.notified[ref.Name] = ref.LastResultsCommit
			}
			st.mu.Unlock()
			if !done || already {
				continue
			}
			msg := fmt.Sprintf("%s: %d runs: %d succeeded, %d failed", ref.ObservedCommit, ref.Runs.Planned, ref.Runs.Succeeded, ref.Runs.Failed)
			if ref.LastResultsCommit != "" {
				msg += "; results in " + ref.LastResultsCommit
			}
			// A commit with failed runs is a failed commit status (Flux's
			// providers: Warning → error → failure).
			typ := corev1.EventTypeNormal
			if ref.Runs.Failed > 0 {
				typ = corev1.EventTypeWarning
			}
			r.EventRecorder.AnnotatedEventf(obj, nil, commitStatusMetadata(ref.Name, ref.ObservedCommit), typ, "ResultsCommitted", "reconcile", "%s", msg)
		}
		r.notifyRefused(obj, st)
	}
	oldReady, ready := conditions.Get(oldObj, meta.ReadyCondition), conditions.Get(obj, meta.ReadyCondition)
	if ready == nil || (oldReady != nil && oldReady.Status == ready.Status && oldReady.Reason == ready.Reason && oldReady.Message == ready.Message) {
		return
	}
	if oldReady != nil && oldReady.Status == ready.Status && oldReady.Reason == ready.Reason && ready.Reason == v1alpha1.FetchFailedReason {
		// A server that stays away answers each retry a little
		// differently (EOF, connection reset): one event per outage.
		return
	}
	if (ready.Reason == v1alpha1.CommitNotVerifiedReason || ready.Reason == v1alpha1.InvalidExperimentsReason) && st != nil && st.announcedRefused(ready.Message) {
		return // the refused commit's own event said it
	}
	annotations := map[string]string{}
	if len(obj.Status.Refs) > 0 && obj.Status.Refs[0].ObservedCommit != "" {
		annotations[prefix+eventv1.MetaRevisionKey] = obj.Status.Refs[0].ObservedCommit
	}
	switch {
	case ready.Status == metav1.ConditionFalse:
		r.EventRecorder.AnnotatedEventf(obj, nil, annotations, corev1.EventTypeWarning, ready.Reason, "reconcile", "%s", ready.Message)
	case ready.Status == metav1.ConditionTrue && oldReady != nil && oldReady.Status == metav1.ConditionFalse:
		r.EventRecorder.AnnotatedEventf(obj, nil, annotations, corev1.EventTypeNormal, ready.Reason, "reconcile", "%s", ready.Message)
	}
}

// notifyJobsNotDeleted says once — a Warning event and an error line —
// that the API server refuses to delete the repository's Jobs, naming the
// permission to grant, and once that deletions work again.
func (r *Reconciler) notifyJobsNotDeleted(ctx context.Context, oldObj, obj *v1alpha1.ExperimentRepository) {
	was, now := conditions.Get(oldObj, v1alpha1.JobsNotDeletedCondition), conditions.Get(obj, v1alpha1.JobsNotDeletedCondition)
	log := ctrl.LoggerFrom(ctx)
	switch {
	case now != nil && (was == nil || was.Reason != now.Reason):
		log.Error(errors.New(now.Message), "cannot delete the repository's Jobs")
		if r.EventRecorder != nil {
			r.EventRecorder.AnnotatedEventf(obj, nil, nil, corev1.EventTypeWarning, now.Reason, "reconcile", "%s", now.Message)
		}
	case now == nil && was != nil:
		log.Info("the repository's Jobs are deleted again")
	}
}

// commitStatusMetadata is the metadata of a commit's final event, as Flux's
// notification-controller reads it: <group>/revision and
// <group>/commit_status: update (commit status providers post a status),
// and for a pull-request ref event.toolkit.fluxcd.io/change_request with
// its number (the providers that comment on pull requests read it).
func commitStatusMetadata(ref, revision string) map[string]string {
	prefix := v1alpha1.Group + "/"
	m := map[string]string{
		prefix + eventv1.MetaRevisionKey:     revision,
		prefix + eventv1.MetaCommitStatusKey: eventv1.MetaCommitStatusUpdateValue,
	}
	if n, ok := reconcile.PullRequestNumber(ref); ok {
		m[eventv1.Group+"/"+eventv1.MetaChangeRequestKey] = strconv.Itoa(n)
	}
	return m
}

// notifyRefused sends the final event of a commit that runs nothing — not
// signed by an allowed key, or none of its experiments loads — once per
// commit, so a pull request's status does not wait forever (serve's review
// hook reports the same moments to the forge).
func (r *Reconciler) notifyRefused(obj *v1alpha1.ExperimentRepository, st *repoState) {
	for _, v := range st.views() {
		// Not waiting for the worker to be idle: both states are final
		// once known (the Ready warning of the same reconcile is left out
		// for them, see announcedRefused).
		if v.Commit == "" {
			continue
		}
		reason, msg := "", ""
		switch {
		case v.NotVerified != "":
			reason, msg = v1alpha1.CommitNotVerifiedReason, v.NotVerified
		case v.Invalid != "" && v.Planned == 0:
			reason, msg = v1alpha1.InvalidExperimentsReason, v.Invalid
		default:
			continue
		}
		st.mu.Lock()
		already := st.refused[v.Ref] == v.Commit
		st.refused[v.Ref] = v.Commit
		st.mu.Unlock()
		if already {
			continue
		}
		rev := revision(v.Ref, v.Commit)
		r.EventRecorder.AnnotatedEventf(obj, nil, commitStatusMetadata(v.Ref, rev), corev1.EventTypeWarning, reason, "reconcile",
			"%s: %s", rev, bounded(msg))
	}
}

// finalize completes the kstatus conditions after the steps: summarize set
// Ready, Reconciling and Stalled from the engine's state; an error of a
// step (a Secret missing, the refs not listed) is retried, so it is never
// Stalled, Reconciling says a retry comes and Ready=False carries it.
// Flux's ResultFinalizer reads a requeue without error as success and would
// mark Ready=True while runs are still in flight, so expsync does not use
// it. The handled reconcile.fluxcd.io/requestedAt is recorded.
func finalize(obj *v1alpha1.ExperimentRepository, recErr error) {
	if recErr != nil {
		msg := bounded(recErr.Error())
		conditions.Delete(obj, meta.StalledCondition)
		if !conditions.IsFalse(obj, meta.ReadyCondition) {
			conditions.MarkFalse(obj, meta.ReadyCondition, meta.FailedReason, "%s", msg)
		}
		if !conditions.IsReconciling(obj) {
			conditions.MarkTrue(obj, meta.ReconcilingCondition, meta.ProgressingWithRetryReason, "%s", msg)
		}
	}
	if v, ok := meta.ReconcileAnnotationValue(obj.GetAnnotations()); ok {
		obj.Status.SetLastHandledReconcileRequest(v)
	}
}
