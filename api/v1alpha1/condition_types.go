package v1alpha1

// Conditions of an ExperimentRepository besides Flux's Ready, Reconciling
// and Stalled (fluxcd/pkg/apis/meta). Each is abnormal-true: present only
// while it holds, its reason saying what failed and its message what to do.
const (
	// FetchFailedCondition: the repository could not be listed or fetched
	// (server down, credentials refused); retried with backoff.
	FetchFailedCondition = "FetchFailed"
	// NotVerifiedCondition: a new commit is not signed by an allowed key;
	// it runs nothing until a signed commit follows.
	NotVerifiedCondition = "NotVerified"
	// InvalidExperimentsCondition: some experiment files do not load
	// (file:line:col in the message); the valid experiments still run.
	InvalidExperimentsCondition = "InvalidExperiments"
	// PushFailedCondition: results could not be pushed; they stay in the
	// run cache and the push is retried.
	PushFailedCondition = "PushFailed"
	// SigningFailedCondition: the attestation or commit signing key cannot
	// be used (missing Secret, wrong passphrase, KMS refusal).
	SigningFailedCondition = "SigningFailed"
	// JobsNotDeletedCondition: the API server refuses to delete the
	// repository's Jobs (the controller's RBAC lacks delete on jobs.batch);
	// finished Jobs stay and superseded runs' Jobs keep running.
	JobsNotDeletedCondition = "JobsNotDeleted"
)

// Reasons of the conditions above and of Ready.
const (
	FetchFailedReason        = "FetchFailed"
	CommitNotVerifiedReason  = "CommitNotVerified"
	InvalidExperimentsReason = "InvalidExperiments"
	PushFailedReason         = "PushFailed"
	SigningKeyUnusableReason = "SigningKeyUnusable"
	SecretNotFoundReason     = "SecretNotFound"
	InvalidSpecReason        = "InvalidSpec"
	// StoreNotMountedReason (Stalled): the controller does not see the
	// store claim at <--store-root>/<namespace>/<claimName>; mount it there.
	StoreNotMountedReason = "StoreNotMounted"
	// NoRunnerImageReason (Stalled): neither spec.execution.runnerImage nor
	// the controller's --runner-image names the runner image.
	NoRunnerImageReason = "NoRunnerImage"
	// DeleteForbiddenReason (JobsNotDeleted): a Job deletion was answered
	// 403 Forbidden; the message names the permission to grant.
	DeleteForbiddenReason = "DeleteForbidden"
	// EmptyRepositoryReason (Ready=True): the repository has no commits
	// yet; nothing to run until its first push.
	EmptyRepositoryReason    = "EmptyRepository"
	RunsInProgressReason     = "RunsInProgress"
	RunsHeldReason           = "RunsHeld"
	ReconciliationDoneReason = "Succeeded"
)
