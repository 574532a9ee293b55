package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/gitsource"
	"github.com/expsync/expsync/internal/executor/kube"
	"github.com/expsync/expsync/render"
)

// KubeExecutors runs every repository's runs as Jobs (executor/kube): one
// kube.Cluster on the manager's client and cache, one Executor per
// ExperimentRepository, bound to the object's namespace, and the store
// claim seen by the controller at <store-root>/<namespace>/<claimName>.
func KubeExecutors() ExecutorSetup {
	return ExecutorSetup{
		Cache: kube.CacheOptions,
		New: func(ctx context.Context, mgr ctrl.Manager, o *Options) (ExecutorFactory, error) {
			m := NewMetrics()
			cl, err := kube.New(ctx, kube.Options{Client: mgr.GetClient(), APIReader: mgr.GetAPIReader(), Cache: mgr.GetCache(),
				Observe: func(ob kube.Observation) {
					switch ob.Kind {
					case kube.JobCreated:
						m.JobCreation.Observe(ob.Latency.Seconds())
					case kube.Finished:
						if ob.QueueWait > 0 {
							m.observedQueueWait(ob.Namespace, ob.RunID, ob.QueueWait.Seconds())
						}
					}
				}})
			if err != nil {
				return nil, err
			}
			return func(obj *v1alpha1.ExperimentRepository) (RepositoryExecutor, error) {
				return kubeExecutor(cl, o, obj)
			}, nil
		},
	}
}

func kubeExecutor(cl *kube.Cluster, o *Options, obj *v1alpha1.ExperimentRepository) (RepositoryExecutor, error) {
	ex := obj.Spec.Execution
	image := ex.RunnerImage
	if image == "" {
		image = o.RunnerImage
	}
	if image == "" {
		return nil, stalled(v1alpha1.NoRunnerImageReason,
			"no runner image: set spec.execution.runnerImage (by digest) or start the controller with --runner-image (chart value runner.image)")
	}
	if err := storeMounted(o.StoreRoot, obj); err != nil {
		return nil, err
	}
	storage, err := kube.NewVolumeStorage(obj.Spec.Store.ClaimName, filepath.Join(o.StoreRoot, obj.Namespace, obj.Spec.Store.ClaimName))
	if err != nil {
		return nil, err
	}
	maxInFlight := int(ex.MaxInFlight)
	if maxInFlight == 0 {
		maxInFlight = o.MaxInFlight
	}
	var pullSecrets []string
	for _, s := range ex.ImagePullSecrets {
		pullSecrets = append(pullSecrets, s.Name)
	}
	e, err := cl.Executor(kube.Repository{
		// The garbage collector deletes the Jobs with the object; no
		// finalizer, and blockOwnerDeletion unset so deleting the object
		// never waits for them.
		Owner: metav1.OwnerReference{APIVersion: v1alpha1.GroupVersion.String(), Kind: v1alpha1.ExperimentRepositoryKind,
			Name: obj.Name, UID: obj.UID, Controller: ptr.To(true)},
		Namespace: obj.Namespace, ServiceAccountName: ex.ServiceAccountName, RunnerImage: image, ImagePullSecrets: pullSecrets,
		Queue: ex.Queue, PriorityClassName: ex.PriorityClassName, MaxInFlight: maxInFlight, Storage: storage,
		URL: gitsource.RedactURL(obj.Spec.URL),
	})
	if err != nil {
		return nil, err
	}
	return kubeRepoExecutor{e}, nil
}

// storeMounted checks that the controller sees the object's store claim
// at <store-root>/<namespace>/<claimName>. The folder is never created
// here: a claim that is not mounted would otherwise become a store on the
// controller's own (ephemeral) disk, which no pod sees.
func storeMounted(root string, obj *v1alpha1.ExperimentRepository) error {
	claim := obj.Spec.Store.ClaimName
	if root == "" {
		return stalled(v1alpha1.StoreNotMountedReason, "the controller runs without --store-root, so it sees no store claim: start it with --store-root and mount claim %s of namespace %s below it", claim, obj.Namespace)
	}
	dir := filepath.Join(root, obj.Namespace, claim)
	fi, err := os.Stat(dir)
	if err == nil && fi.IsDir() {
		return nil
	}
	return stalled(v1alpha1.StoreNotMountedReason,
		"store claim %s is not mounted in the controller at %s: mount the PersistentVolumeClaim %s/%s there (chart values store.claims or store.volume) and restart the controller; it is checked again every interval",
		claim, dir, obj.Namespace, claim)
}

// kubeRepoExecutor adapts kube.Executor to RepositoryExecutor.
type kubeRepoExecutor struct{ *kube.Executor }

// StoreURL is where a pod's runner sees the store's inputs.
func (kubeRepoExecutor) StoreURL() string { return "file://" + render.StoreInputsDir }

// Shutdown leaves the repository's Jobs running: a controller that stops
// (or loses leadership) hands them to the next one, which adopts them.
func (kubeRepoExecutor) Shutdown(context.Context) error { return nil }

func (k kubeRepoExecutor) Prune(ctx context.Context, keep map[string]bool) error {
	n, err := k.Executor.Prune(ctx, keep)
	if err == nil && n > 0 {
		ctrl.LoggerFrom(ctx).Info(fmt.Sprintf("deleted %d Jobs no ref plans", n))
	}
	return err
}

func (k kubeRepoExecutor) QuotaRefusal() string {
	if q := k.Executor.QuotaRefusal(); q != nil {
		return q.Error()
	}
	return ""
}
