// Package kube executes runs as Kubernetes Jobs and collects their results
// without trusting the code under test.
//
// One Cluster serves a controller process: it holds the API client (for
// writes) and follows Jobs and their pods through the controller's informer
// cache (CacheOptions), so waiting for thousands of runs costs no polling.
// Each ExperimentRepository gets an Executor (Cluster.Executor) bound to its
// namespace, service account, store and queue; it implements the reconcile
// engine's Executor.
//
// # A run's life
//
//  1. Execute renders the run (render.RenderJobObjects) and creates its Job
//     in the repository's namespace, owned by the ExperimentRepository. The
//     Job's name is derived from the run ID, so creating is idempotent: a Job
//     of that name carrying the same run ID is adopted (a restarted controller
//     finds the Jobs its predecessor made), one carrying another run ID is a
//     *NameCollisionError. The run contract travels in the pod template (an
//     annotation the pod reads through a downward API volume), so a run costs
//     two API writes over its whole life: creating its Job and deleting it.
//  2. The Job runs under its podFailurePolicy (render/job.go): retries,
//     evictions and deadlines are the Job controller's, and a run ends with
//     exactly one result whatever happened to its pods.
//  3. Once the Job is Complete or Failed, collect builds the result from what
//     the code under test cannot forge (see collect.go): the init container's
//     own termination message for the inputs and the contract it verified,
//     the pod status for the exit code and the image digests that ran, and
//     the run's own store prefix for outputs, each rehashed while it is
//     copied into the controller's store. What only the pod can report
//     (usage, metrics, the log) is marked self-reported.
//  4. A cacheable result is recorded in the store's run cache, then the Job
//     (and with it, through the garbage collector, its pods) is deleted and
//     the run's prefix removed: from then on the run cache stands for the
//     run, and the reconcile engine commits it. A controller that dies
//     between the two finds the result in the run cache next time; Prune
//     deletes the Job it left.
//
// A Job or pod deleted by someone else mid-run (kubectl delete, a namespace
// going) ends the run Errored, with no result: the engine holds it and
// runs it again, so the run still ends in exactly one result.
//
// Cancelling Execute's context with ErrSuperseded as its cause (a new commit
// edited the experiment) deletes the Job; any other cancellation (the
// controller stopping, an object suspended) leaves it running for the next
// controller to adopt.
//
// # The store in a cluster
//
// A repository's store is a PersistentVolumeClaim in its namespace
// (VolumeStorage), which the controller mounts whole:
//
//	inputs/        the context trees and repository inputs runs read
//	               (pods: read-only)
//	results/       outputs, logs and the run cache (the controller only)
//	runs/<run ID>/ one run's prefix: the only place its pod can write
//	               (a subPath mount), read back by the controller as
//	               untrusted bytes
//
// so a run can neither read another run's outputs nor write anywhere but its
// own prefix. Storage is the interface: an object store with per-prefix
// credentials can take the volume's place.
//
// # Tenancy
//
// A Job lives in its ExperimentRepository's namespace, runs under the service
// account the repository names, and refers only to that namespace's Secrets
// (secretKeyRef), claim (the store) and Kueue LocalQueue. The namespace's
// ResourceQuota applies: a Job the quota refuses is a *QuotaError naming the
// quota (the engine holds the run and tries again later), and pods the quota
// refuses are reported by QuotaRefusal while the Job waits for room.
package kube
