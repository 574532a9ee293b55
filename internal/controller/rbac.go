package controller

// The Kubernetes permissions `expsync controller` needs, one marker per use,
// next to the code that needs it. controller-gen turns them into
// config/rbac/role.yaml (`make generate`; `make verify` fails when it is
// stale), and charts/expsync renders exactly these rules: as a ClusterRole
// (watch.mode cluster) or as Roles of the watched namespace (watch.mode
// namespace). Nothing else grants the controller anything, and the chart's
// test runs the controller impersonating its ServiceAccount on a real API
// server: a missing rule fails it, a rule never used is reported.
//
// The run pods' own ServiceAccount gets none of these: pods mount no token.

// The objects reconciled (Reconcile, the cache) and their status (Flux's
// serial patch helper patches status only; no finalizer is ever added).
// +kubebuilder:rbac:groups=expsync.dev,resources=experimentrepositories,verbs=get;list;watch
// +kubebuilder:rbac:groups=expsync.dev,resources=experimentrepositories/status,verbs=get;update;patch

// Git credentials, signing keys, trusted keys: read when used through the
// uncached client (secrets.go), never listed or watched.
// +kubebuilder:rbac:groups="",resources=secrets,verbs=get

// One Job per run (executor/kube create.go, await.go, prune.go): created,
// followed through the cache, deleted once its result is committed.
// +kubebuilder:rbac:groups=batch,resources=jobs,verbs=get;list;watch;create;delete

// Pods of expsync's Jobs, followed through the cache (collect.go, cluster.go).
// +kubebuilder:rbac:groups="",resources=pods,verbs=get;list;watch

// Events: the Job controller's FailedCreate events (a pod refused by a quota)
// are watched; expsync's own events are recorded (Flux's event recorder).
// +kubebuilder:rbac:groups="",resources=events,verbs=get;list;watch;create;patch

// Kueue's Workloads of expsync's Jobs: the queue wait (kueue.go).
// +kubebuilder:rbac:groups=kueue.x-k8s.io,resources=workloads,verbs=get;list;watch

// Leader election, in the controller's own namespace only (the namespace in
// these markers is a placeholder: the chart uses the release's): the Lease,
// and the events controller-runtime records when a replica becomes leader.
// +kubebuilder:rbac:groups=coordination.k8s.io,resources=leases,verbs=get;create;update,namespace=expsync-system
// +kubebuilder:rbac:groups="",resources=events,verbs=create;patch,namespace=expsync-system
