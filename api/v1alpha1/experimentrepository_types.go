package v1alpha1

import (
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The ExperimentRepository custom resource: what `expsync controller`
// reconciles. Its spec mirrors one repository entry of `expsync serve`'s
// configuration (url, refs, interval, verify, ...), with Secrets of the
// object's own namespace in place of files and environment variables, so a
// user moves between the two without relearning. Only these types carry
// kubebuilder markers and generated deepcopy methods; the experiment file
// types of this package stay plain.

const (
	// ExperimentRepositoryKind is the kind of the custom resource.
	ExperimentRepositoryKind = "ExperimentRepository"
	// Group is the API group of the custom resource.
	Group = "expsync.dev"
)

// ExperimentRepositorySpec says which repository to watch, which of its
// refs run, who signs what, and where the runs execute.
//
// The password rule is the spec's, not the url's: the API server quotes a
// refused string field's value in its answer, and an object's as "object",
// so the refusal never repeats the password.
//
// +kubebuilder:object:generate=true
// +kubebuilder:validation:XValidation:rule="!self.url.matches('^[a-z]+://[^/@]*:[^/@]*@')",fieldPath=".url",message="url: a password in the URL would be shown in status, events and logs; remove it and put the credentials in the Secret named by secretRef (keys username and password, or bearerToken)"
// +kubebuilder:validation:XValidation:rule="!self.url.startsWith('http://') || (has(self.allowHTTP) && self.allowHTTP)",message="url: plain http:// sends code and credentials unencrypted; use https:// or ssh://, or set allowHTTP: true for a private network"
// +kubebuilder:validation:XValidation:rule="self.refs.all(r, has(r.trusted) && r.trusted) || has(self.verify)",message="refs: an untrusted ref runs only commits signed by an allowed key, and verify names none; add verify.secretRef (public keys) or set trusted: true"
type ExperimentRepositorySpec struct {
	// URL of the Git repository: https://, ssh:// or (with allowHTTP)
	// http://. Credentials never go in the URL: name a Secret in secretRef.
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern="^(https?|ssh)://[^\\s]+$"
	// +required
	URL string `json:"url"`

	// AllowHTTP permits plain http:// (tests, private networks).
	// +optional
	AllowHTTP bool `json:"allowHTTP,omitempty"`

	// Refs are the watched ref patterns: a branch ("main"), a branch glob
	// ("exp/*") or a full ref name or glob ("refs/pull/*/head").
	// +kubebuilder:validation:MinItems=1
	// +kubebuilder:validation:MaxItems=32
	// +listType=atomic
	// +required
	Refs []WatchedRef `json:"refs"`

	// Interval between two listings of the repository's refs; each
	// listing is spread by a small random jitter. An unchanged repository
	// costs one listing per interval.
	// +kubebuilder:default="1m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +kubebuilder:validation:XValidation:rule="duration(self) >= duration('10s')",message="interval: at least 10s (each interval costs one listing of the repository's refs)"
	// +optional
	Interval *metav1.Duration `json:"interval,omitempty"`

	// Timeout bounds one Git operation (a listing, a fetch, one push
	// attempt).
	// +kubebuilder:default="5m0s"
	// +kubebuilder:validation:Type=string
	// +kubebuilder:validation:Pattern="^([0-9]+(\\.[0-9]+)?(ms|s|m|h))+$"
	// +optional
	Timeout *metav1.Duration `json:"timeout,omitempty"`

	// SecretRef names a Secret of this namespace holding the Git
	// credentials, with the keys of Flux's GitRepository so one Secret
	// serves both: username and password (HTTPS basic auth), bearerToken
	// (HTTPS token auth), or identity and known_hosts (SSH).
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`

	// Verify checks the signatures of the commits before they run.
	// +optional
	Verify *CommitVerification `json:"verify,omitempty"`

	// Commit configures the results commits expsync pushes back.
	// +optional
	Commit *ResultsCommit `json:"commit,omitempty"`

	// Attestation configures the key that signs every run's in-toto
	// statement.
	// +required
	Attestation Attestation `json:"attestation"`

	// TrustedKeys names a Secret of this namespace whose keys ending in
	// .pub are further public keys: a results folder signed by one of them
	// counts as done (the signing key's own public key always does).
	// +optional
	TrustedKeys *meta.LocalObjectReference `json:"trustedKeys,omitempty"`

	// Execution says how the runs execute in this namespace.
	// +optional
	Execution Execution `json:"execution,omitempty"`

	// Store is where run inputs, outputs, logs and results are kept.
	// +required
	Store Store `json:"store"`

	// Suspend stops new runs and new results commits; runs executing go on.
	// +optional
	Suspend bool `json:"suspend,omitempty"`

	// Forge posts a commit status on each pull request's head commit
	// (pending with counts, then success or failure linking to its
	// results) and one comment per pull request, edited in place, with the
	// diff against the merge base: what serve's forge: does. A forge that
	// is down delays the status, never a results commit.
	// +optional
	Forge *Forge `json:"forge,omitempty"`
}

// Forge names the forge hosting the repository's pull requests.
//
// +kubebuilder:object:generate=true
type Forge struct {
	// Kind of forge: gitea, forgejo, github or gitlab.
	// +kubebuilder:validation:Enum=gitea;forgejo;github;gitlab
	// +required
	Kind string `json:"kind"`

	// BaseURL of the forge's API (default: the repository URL's scheme
	// and host; GitHub: https://api.github.com).
	// +kubebuilder:validation:MaxLength=2048
	// +kubebuilder:validation:Pattern="^https?://[^\\s@]+$"
	// +optional
	BaseURL string `json:"baseURL,omitempty"`

	// Repository on the forge, owner/name (default: the repository URL's
	// path without .git).
	// +kubebuilder:validation:MaxLength=512
	// +kubebuilder:validation:Pattern="^[^\\s]+/[^\\s]+$"
	// +optional
	Repository string `json:"repository,omitempty"`

	// SecretRef names a Secret of this namespace whose key token holds
	// the forge's API token (statuses and comments: Gitea write:repository
	// and write:issue, GitHub statuses and pull-requests write, GitLab
	// api). It is sent only in the Authorization header, never written to
	// a log, an event or the status.
	// +required
	SecretRef meta.LocalObjectReference `json:"secretRef"`

	// Context names the commit status and the comment's marker (default
	// expsync); two deployments reporting on one repository need two.
	// +kubebuilder:validation:MaxLength=64
	// +kubebuilder:validation:Pattern="^[A-Za-z0-9][A-Za-z0-9._/-]*$"
	// +optional
	Context string `json:"context,omitempty"`
}

// WatchedRef is one watched ref pattern, as in serve's refs.
//
// +kubebuilder:object:generate=true
// +kubebuilder:validation:XValidation:rule="!has(self.resultsBranch) || self.resultsBranch.contains('{{') || !self.pattern.matches('[*?\\\\[]')",message="resultsBranch: a literal branch on a pattern matching several refs would commit the results of different pull requests onto each other's code; name one branch per ref with a template such as expsync/results/pr-{{number}} or expsync/results/{{ref}}"
// +kubebuilder:validation:XValidation:rule="!self.pattern.startsWith('refs/') || self.pattern.startsWith('refs/heads/') || has(self.resultsBranch)",message="resultsBranch: a ref outside refs/heads (a pull request head) cannot take commits; name a results branch such as expsync/results/pr-{{number}}"
type WatchedRef struct {
	// Pattern is a branch name, a branch glob, or a full ref name or glob;
	// '*' matches within one path segment.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=255
	// +kubebuilder:validation:Pattern="^[^-\\s][^\\s:~^\\\\]*$"
	// +kubebuilder:validation:XValidation:rule="!self.contains('..')",message="pattern: '..' is not allowed in a ref pattern"
	// +required
	Pattern string `json:"pattern"`

	// Trusted refs run their commits; untrusted refs (pull requests from
	// forks) run a commit only when every new commit is signed by a key of
	// verify.secretRef.
	// +optional
	Trusted bool `json:"trusted,omitempty"`

	// ResultsBranch receives the results instead of the ref itself. A
	// template names one branch per ref: {{number}} is the pull request
	// number, {{ref}} the ref without refs/ and heads/.
	// +kubebuilder:validation:MaxLength=255
	// +optional
	ResultsBranch string `json:"resultsBranch,omitempty"`
}

// CommitVerification mirrors serve's verify.
//
// +kubebuilder:object:generate=true
type CommitVerification struct {
	// Required verifies trusted refs too: a trusted ref's first signed head
	// is its baseline, then every new commit is checked.
	// +optional
	Required bool `json:"required,omitempty"`

	// SecretRef names a Secret of this namespace with the allowed public
	// keys, as Flux's GitRepository verify takes them: OpenPGP keys under
	// keys ending in .asc, SSH keys (allowed_signers or authorized_keys
	// lines) under keys ending in .sshpub.
	// +required
	SecretRef meta.LocalObjectReference `json:"secretRef"`

	// From are full IDs of signed commits to verify from, for a branch
	// stuck behind an unsigned commit.
	// +kubebuilder:validation:MaxItems=16
	// +listType=set
	// +optional
	From []CommitID `json:"from,omitempty"`
}

// CommitID is a full hexadecimal Git commit ID.
// +kubebuilder:validation:Pattern="^[0-9a-f]{40}([0-9a-f]{24})?$"
type CommitID string

// ResultsCommit configures expsync's results commits.
//
// +kubebuilder:object:generate=true
type ResultsCommit struct {
	// Author of the results commits (default expsync
	// <expsync@localhost>).
	// +optional
	Author *CommitAuthor `json:"author,omitempty"`

	// SigningKey names a Secret of this namespace holding the key that
	// signs results commits: an armored OpenPGP private key under git.asc
	// (as Flux's image-automation-controller takes it) or an SSH private
	// key under identity, with its passphrase, if any, under passphrase.
	// +optional
	SigningKey *meta.LocalObjectReference `json:"signingKey,omitempty"`

	// MessageTemplate is a Go text/template for the commit message.
	// Fields: .Source (the commit the runs were planned from), .Ref,
	// .Runs, .Succeeded, .Failed, .Experiments (name → counts). The
	// Expsync-Source-Commit trailer is always appended.
	// +kubebuilder:validation:MaxLength=4096
	// +optional
	MessageTemplate string `json:"messageTemplate,omitempty"`
}

// CommitAuthor names the author of results commits.
//
// +kubebuilder:object:generate=true
type CommitAuthor struct {
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=256
	// +required
	Name string `json:"name"`
	// +kubebuilder:validation:MinLength=3
	// +kubebuilder:validation:MaxLength=256
	// +kubebuilder:validation:Pattern="^[^<>\\s]+@[^<>\\s]+$"
	// +required
	Email string `json:"email"`
}

// Attestation names the key that signs run statements: a Secret as cosign
// and Tekton Chains name it, or a KMS key URI. Exactly one of the two.
//
// +kubebuilder:object:generate=true
// +kubebuilder:validation:XValidation:rule="has(self.secretRef) != has(self.kmsKey)",message="attestation: name exactly one signing key, secretRef (a Secret with cosign.key and cosign.password) or kmsKey (a KMS key URI)"
type Attestation struct {
	// SecretRef names a Secret of this namespace with cosign.key (a cosign
	// encrypted private key, as `cosign generate-key-pair k8s://NS/NAME`
	// writes it) and cosign.password.
	// +optional
	SecretRef *meta.LocalObjectReference `json:"secretRef,omitempty"`

	// KMSKey is a key URI of sigstore's KMS support: awskms://,
	// gcpkms://, azurekms:// or hashivault://.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern="^(awskms|gcpkms|azurekms|hashivault)://[^\\s]+$"
	// +optional
	KMSKey string `json:"kmsKey,omitempty"`

	// BuilderID names this deployment in every statement
	// (runDetails.builder.id); verification policy binds builder IDs to
	// keys. Default: the controller's --builder-id.
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern="^https://[^\\s]+$"
	// +optional
	BuilderID string `json:"builderID,omitempty"`
}

// Execution says how runs execute: every name is of this namespace.
//
// +kubebuilder:object:generate=true
type Execution struct {
	// ServiceAccountName the run pods use (default: the namespace's
	// default); its token is never mounted.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
	// +optional
	ServiceAccountName string `json:"serviceAccountName,omitempty"`

	// RunnerImage holds the static expsync binary the pods' init
	// container runs, pinned by digest (default: the controller's
	// --runner-image).
	// +kubebuilder:validation:MaxLength=1024
	// +kubebuilder:validation:Pattern="^[^\\s@]+@sha256:[0-9a-f]{64}$"
	// +optional
	RunnerImage string `json:"runnerImage,omitempty"`

	// Queue is the Kueue LocalQueue of this namespace for runs whose
	// experiment names none.
	// +kubebuilder:validation:MaxLength=63
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
	// +optional
	Queue string `json:"queue,omitempty"`

	// PriorityClassName for runs whose experiment names none.
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
	// +optional
	PriorityClassName string `json:"priorityClassName,omitempty"`

	// MaxInFlight bounds the runs of this repository that have a Job at
	// once (default: the controller's --max-in-flight).
	// +kubebuilder:validation:Minimum=1
	// +kubebuilder:validation:Maximum=100000
	// +optional
	MaxInFlight int32 `json:"maxInFlight,omitempty"`

	// ImagePullSecrets are Secrets of this namespace for private
	// registries.
	// +kubebuilder:validation:MaxItems=16
	// +listType=atomic
	// +optional
	ImagePullSecrets []meta.LocalObjectReference `json:"imagePullSecrets,omitempty"`
}

// Store is where a repository's run inputs, outputs and results live.
//
// +kubebuilder:object:generate=true
type Store struct {
	// ClaimName is a PersistentVolumeClaim of this namespace
	// (ReadWriteMany; ReadWriteOnce works on one node). Each pod writes
	// only its own run's part of it.
	// +kubebuilder:validation:MinLength=1
	// +kubebuilder:validation:MaxLength=253
	// +kubebuilder:validation:Pattern="^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"
	// +required
	ClaimName string `json:"claimName"`
}

// ExperimentRepositoryStatus is the observed state. It stays bounded
// whatever the number of runs: results live in Git, never here.
//
// +kubebuilder:object:generate=true
type ExperimentRepositoryStatus struct {
	// ObservedGeneration is the generation last reconciled to Ready or
	// Stalled (kstatus), so `kubectl wait --for=condition=Ready` and Flux
	// health checks never read a verdict about an older spec.
	// +optional
	ObservedGeneration int64 `json:"observedGeneration,omitempty"`

	// Conditions: Ready, Reconciling, Stalled, and the abnormal-true
	// FetchFailed, NotVerified, InvalidExperiments, PushFailed,
	// SigningFailed while they hold.
	// +listType=map
	// +listMapKey=type
	// +optional
	Conditions []metav1.Condition `json:"conditions,omitempty"`

	// Refs are the watched refs seen at the last listing, in the order of
	// spec.refs then by name; at most MaxStatusRefs (RefsTotal counts
	// them all).
	// +kubebuilder:validation:MaxItems=50
	// +listType=map
	// +listMapKey=name
	// +optional
	Refs []RefStatus `json:"refs,omitempty"`

	// RefsTotal counts the watched refs seen, listed in Refs or not.
	// +optional
	RefsTotal int32 `json:"refsTotal,omitempty"`

	meta.ReconcileRequestStatus `json:",inline"`
}

// MaxStatusRefs bounds status.refs: a repository with thousands of pull
// requests must not grow the object towards etcd's size limit.
const MaxStatusRefs = 50

// RefStatus is what one watched ref looks like now.
//
// +kubebuilder:object:generate=true
type RefStatus struct {
	// Name is the full ref name (refs/heads/main).
	// +kubebuilder:validation:MaxLength=255
	// +required
	Name string `json:"name"`

	// ObservedCommit is the ref's commit at the last listing, as Flux
	// writes revisions: main@sha1:<hex>.
	// +kubebuilder:validation:MaxLength=400
	// +optional
	ObservedCommit string `json:"observedCommit,omitempty"`

	// LastResultsCommit is the last results commit expsync pushed for
	// this ref (<branch>@sha1:<hex>).
	// +kubebuilder:validation:MaxLength=400
	// +optional
	LastResultsCommit string `json:"lastResultsCommit,omitempty"`

	// Runs counts by phase the runs of the commit being reconciled: the
	// observed commit, or an earlier one whose runs are still in flight
	// while the observed commit waits (Message names it).
	// +optional
	Runs RunCounts `json:"runs,omitempty"`

	// Message says why the ref is not done (not verified, invalid
	// experiments, a failed push), in one bounded line.
	// +kubebuilder:validation:MaxLength=1024
	// +optional
	Message string `json:"message,omitempty"`
}

// RunCounts counts a commit's planned runs by phase.
//
// +kubebuilder:object:generate=true
type RunCounts struct {
	// Planned runs of the commit's valid experiments.
	Planned int32 `json:"planned"`
	// Succeeded and Failed runs have their results in the branch.
	Succeeded int32 `json:"succeeded"`
	Failed    int32 `json:"failed"`
	// Running runs have a Job (or wait for a place in the in-flight
	// bound).
	Running int32 `json:"running"`
	// Held runs cannot run here now (a missing Secret, a refused quota)
	// and are tried again later.
	Held int32 `json:"held"`
	// InvalidExperiments counts experiments that did not load; their runs
	// are not planned.
	// +optional
	InvalidExperiments int32 `json:"invalidExperiments,omitempty"`
}

// ExperimentRepository is a Git repository of experiments that expsync
// reconciles: new runs become Jobs in this namespace, their signed results
// are committed back.
//
// +kubebuilder:object:generate=true
// +kubebuilder:object:root=true
// +kubebuilder:resource:shortName=exprepo,categories=expsync
// +kubebuilder:subresource:status
// +kubebuilder:printcolumn:name="Ready",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].status"
// +kubebuilder:printcolumn:name="Status",type="string",JSONPath=".status.conditions[?(@.type==\"Ready\")].message"
// +kubebuilder:printcolumn:name="Revision",type="string",JSONPath=".status.refs[0].observedCommit"
// +kubebuilder:printcolumn:name="Suspended",type="boolean",JSONPath=".spec.suspend",priority=1
// +kubebuilder:printcolumn:name="URL",type="string",JSONPath=".spec.url",priority=1
// +kubebuilder:printcolumn:name="Age",type="date",JSONPath=".metadata.creationTimestamp"
type ExperimentRepository struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	Spec ExperimentRepositorySpec `json:"spec,omitempty"`
	// +kubebuilder:default={"observedGeneration":-1}
	Status ExperimentRepositoryStatus `json:"status,omitempty"`
}

// ExperimentRepositoryList is a list of ExperimentRepository objects.
//
// +kubebuilder:object:generate=true
// +kubebuilder:object:root=true
type ExperimentRepositoryList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	Items           []ExperimentRepository `json:"items"`
}

// GetConditions returns the status conditions (conditions.Getter).
func (in *ExperimentRepository) GetConditions() []metav1.Condition {
	return in.Status.Conditions
}

// SetConditions sets the status conditions (conditions.Setter).
func (in *ExperimentRepository) SetConditions(c []metav1.Condition) {
	in.Status.Conditions = c
}

// GetRequeueAfter is the interval between listings.
func (in *ExperimentRepository) GetRequeueAfter() time.Duration {
	if in.Spec.Interval == nil || in.Spec.Interval.Duration <= 0 {
		return time.Minute
	}
	return in.Spec.Interval.Duration
}
