// Package v1alpha1 defines the experiment file format (kind Experiment), the
// repository configuration file (expsync.yaml, kind RepositoryConfig), their
// defaults and their validation. Files are read only through a tree.Reader, so
// the same code validates a working folder, a Git commit or an in-memory tree.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package v1alpha1

import (
	"fmt"
	"strings"
	"time"
)

// APIVersion is the apiVersion of every document this package reads.
const APIVersion = "expsync.dev/v1alpha1"

// Kinds of the documents this package reads.
const (
	KindExperiment       = "Experiment"
	KindRepositoryConfig = "RepositoryConfig"
)

// ConfigFile is the repository configuration's path at the repository root.
const ConfigFile = "expsync.yaml"

// HostImage as an experiment's image means "a process on the host": allowed
// in local mode only.
const HostImage = "host"

// Mode is where runs execute; it decides what an image must look like and
// what a run's identity records as its image.
type Mode string

const (
	// ModeLocal executes every run as a host process, whatever its image says.
	ModeLocal Mode = "local"
	// ModeKubernetes executes every run as a Job of a digest-pinned image.
	ModeKubernetes Mode = "kubernetes"
)

// Experiment is one document of kind Experiment.
type Experiment struct {
	// APIVersion is always "expsync.dev/v1alpha1" (required).
	APIVersion string `json:"apiVersion" yaml:"apiVersion"`
	// Kind is "Experiment" ("ExperimentTemplate" in a template file, which
	// has only a spec) (required).
	Kind     string         `json:"kind" yaml:"kind"`
	Metadata ObjectMeta     `json:"metadata" yaml:"metadata"`
	Spec     ExperimentSpec `json:"spec" yaml:"spec"`
}

// ObjectMeta names an experiment. Labels and annotations are free-form notes
// for people and tools; they never enter a run's identity.
type ObjectMeta struct {
	// Name is unique per repository: a DNS-1123 label of at most
	// MaxNameLength characters, so Job names built from it fit in 63.
	Name string `json:"name" yaml:"name"`
	// Labels are free-form notes (team, project); Kubernetes mode copies
	// them onto the run's Job. Never part of a run's identity.
	Labels map[string]string `json:"labels,omitempty" yaml:"labels,omitempty"`
	// Annotations are free-form notes for tools; never part of a run's
	// identity.
	Annotations map[string]string `json:"annotations,omitempty" yaml:"annotations,omitempty"`
}

// ExperimentSpec says what to run (image, command, env, context, params,
// inputs, outputs), over which points (sweep, repeat), and how to schedule it
// (resources, timeout, retries, queue, priority, placement). Only the first
// group enters a run's identity.
type ExperimentSpec struct {
	// Template is a repository path (from the root) of a template file whose
	// spec this one extends; see MergeTemplate for the rule.
	Template string `json:"template,omitempty" yaml:"template,omitempty"`

	// Image is a digest-pinned reference ("repo@sha256:<64 hex>"), or
	// HostImage for experiments that only run on the host in local mode.
	Image string `json:"image,omitempty" yaml:"image,omitempty"`
	// Command is the program and its arguments; Args are appended to it.
	// Both may use {{params.NAME}}.
	Command []string `json:"command,omitempty" yaml:"command,omitempty"`
	// Args are appended to Command (a template's command with the
	// experiment's arguments, say); {{params.NAME}} works here too.
	Args []string `json:"args,omitempty" yaml:"args,omitempty"`
	// Env are the run's environment variables, each a literal value or a
	// secret reference; merged with a template's by name.
	Env []EnvVar `json:"env,omitempty" yaml:"env,omitempty"`
	// Context is the repository subtree (from the root) that becomes the work
	// folder; default: the experiment file's folder.
	Context string `json:"context,omitempty" yaml:"context,omitempty"`
	// Params are the default parameter values (strings, numbers, booleans);
	// each sweep point overrides some of them.
	Params map[string]any `json:"params,omitempty" yaml:"params,omitempty"`
	Sweep  *Sweep         `json:"sweep,omitempty" yaml:"sweep,omitempty"`
	// Repeat runs every point this many times (default 1); run i > 0 of a
	// point has its own ID, so raising repeat adds runs and keeps the others.
	Repeat int     `json:"repeat,omitempty" yaml:"repeat,omitempty"`
	Inputs []Input `json:"inputs,omitempty" yaml:"inputs,omitempty"`
	// Outputs are the files (or folders, ending in "/") of the work folder
	// the run produces: hashed, attested and committed (up to 1 MiB per
	// file; larger ones are recorded by digest and kept in the store). A
	// declared output the run does not write fails the run.
	Outputs []string `json:"outputs,omitempty" yaml:"outputs,omitempty"`
	// Metrics is a flat JSON object of numbers, relative to the work folder.
	Metrics string `json:"metrics,omitempty" yaml:"metrics,omitempty"`
	// Plots choose the SVG plots of the experiment's results README, each a
	// metric against a swept parameter; without them the README plots a
	// default choice. Presentation only: never part of a run's identity.
	Plots []Plot `json:"plots,omitempty" yaml:"plots,omitempty"`
	// Reproduce says how a reproduction of a run (`expsync reproduce`,
	// serve's audit) is judged: which outputs must match bit for bit and
	// how far each metric may move. Declared before anything runs, shown
	// in every verdict; never part of a run's identity.
	Reproduce *Reproduce `json:"reproduce,omitempty" yaml:"reproduce,omitempty"`

	Resources Resources `json:"resources,omitempty" yaml:"resources,omitempty"`
	// Timeout bounds each attempt of a run (default: expsync.yaml's
	// defaults.timeout, else 1h); the run is then stopped (SIGTERM to its
	// process group, then SIGKILL) and counts as timed out.
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	Retries Retries  `json:"retries,omitempty" yaml:"retries,omitempty"`
	// Queue is the Kueue LocalQueue the run's Job is submitted to
	// (Kubernetes mode; default: expsync.yaml's defaults.queue, else none):
	// the Job waits suspended until Kueue admits it. Ignored in local mode.
	Queue string `json:"queue,omitempty" yaml:"queue,omitempty"`
	// PriorityClassName is the run pod's PriorityClass (Kubernetes mode;
	// default: expsync.yaml's defaults.priorityClassName, else none).
	PriorityClassName string `json:"priorityClassName,omitempty" yaml:"priorityClassName,omitempty"`
	// NodeSelector places the run's pod on nodes with these labels
	// (Kubernetes mode).
	NodeSelector map[string]string `json:"nodeSelector,omitempty" yaml:"nodeSelector,omitempty"`
	// Tolerations let the run's pod onto tainted nodes (Kubernetes mode).
	Tolerations []Toleration `json:"tolerations,omitempty" yaml:"tolerations,omitempty"`
}

// EnvVar is a literal value or a secret reference, never both.
type EnvVar struct {
	// Name is the variable's name (required).
	Name string `json:"name" yaml:"name"`
	// Value is a literal value; {{params.NAME}} works here. Part of the
	// run's identity.
	Value     string     `json:"value,omitempty" yaml:"value,omitempty"`
	SecretRef *SecretRef `json:"secretRef,omitempty" yaml:"secretRef,omitempty"`
}

// SecretRef names a Kubernetes Secret key (kube mode) or, in local mode, the
// operator's environment variable EXPSYNC_SECRET_<NAME>_<KEY>; see the runner.
type SecretRef struct {
	// Name is the Secret's name (required); only {name, key} enter the
	// run's identity, never the value.
	Name string `json:"name" yaml:"name"`
	// Key is the key in the Secret (required).
	Key string `json:"key" yaml:"key"`
}

// Sweep expands an experiment into points: the cartesian product of Matrix,
// minus every point that matches an Exclude entry, plus every Include entry
// (an include entry is a point of its own, added after exclusion).
type Sweep struct {
	// Matrix maps a parameter to its values; the sweep is every
	// combination of them.
	Matrix map[string][]any `json:"matrix,omitempty" yaml:"matrix,omitempty"`
	// Include adds points: each entry is one point (parameters over the
	// defaults), added after exclusion.
	Include []map[string]any `json:"include,omitempty" yaml:"include,omitempty"`
	// Exclude drops every matrix point whose parameters match all of an
	// entry's.
	Exclude []map[string]any `json:"exclude,omitempty" yaml:"exclude,omitempty"`
}

// Plot is one plot of the results README: metric (a key of the metrics
// file) on the y axis against a swept parameter on the x axis, one line per
// combination of the other swept parameters. Against may be left out when
// the sweep varies exactly one parameter.
type Plot struct {
	// Metric is a key of the metrics file, plotted on the y axis (required).
	Metric string `json:"metric" yaml:"metric"`
	// Against is the swept parameter on the x axis; its values must be
	// numbers (default: the sweep's only parameter, when it varies one).
	Against string `json:"against,omitempty" yaml:"against,omitempty"`
}

// Reproduce are the tolerances of a reproduction. Without them every
// output must be identical and every metric equal.
type Reproduce struct {
	// Exact lists the outputs (files, or folders ending in "/", as in
	// spec.outputs) that must be bit for bit identical; the others may
	// differ (shown, never failing the verdict). Absent: every output must
	// be identical; an empty list: none must (the metrics and the exit
	// status decide).
	Exact []string `json:"exact,omitempty" yaml:"exact,omitempty"`
	// Metrics give a metric of spec.metrics room to move; a metric not
	// listed must be equal.
	Metrics []MetricTolerance `json:"metrics,omitempty" yaml:"metrics,omitempty"`
}

// MetricTolerance lets metric Name differ by at most Abs, or by at most
// Rel times the attested value's magnitude: |new - attested| <=
// max(Abs, Rel*|attested|).
type MetricTolerance struct {
	// Name is a key of the metrics file (required).
	Name string `json:"name" yaml:"name"`
	// Abs is the absolute difference allowed (default 0).
	Abs float64 `json:"abs,omitempty" yaml:"abs,omitempty"`
	// Rel is the difference allowed relative to the attested value's
	// magnitude (default 0).
	Rel float64 `json:"rel,omitempty" yaml:"rel,omitempty"`
}

// Input is a file placed in the work folder before the command starts: fetched
// from URI (then SHA256 is required), or a repository File (hashed from the
// tree; SHA256, when given, must match it).
type Input struct {
	// Name names the input (required, unique in the experiment).
	Name string `json:"name" yaml:"name"`
	// URI is an http(s) URL the input is fetched from once, then served
	// from the store; SHA256 is then required and checked before the run
	// starts (a mismatch ends the run as InputMismatch).
	URI string `json:"uri,omitempty" yaml:"uri,omitempty"`
	// File is a repository path from the root.
	File string `json:"file,omitempty" yaml:"file,omitempty"`
	// SHA256 is the input's digest (64 hex): required with URI; with File
	// it must match the file's.
	SHA256 string `json:"sha256,omitempty" yaml:"sha256,omitempty"`
	// Path is where the file lands, relative to the work folder; default
	// "inputs/<name>".
	Path string `json:"path,omitempty" yaml:"path,omitempty"`
}

// Resources are per-run requests (and limits, for memory and GPUs).
type Resources struct {
	// CPU is the CPU request, a Kubernetes quantity ("500m", "2"); local
	// mode schedules runs by it (default: expsync.yaml's defaults, else
	// none).
	CPU string `json:"cpu,omitempty" yaml:"cpu,omitempty"`
	// Memory is the memory request and limit of the run's container, a
	// quantity ("512Mi", "16Gi"); local mode schedules runs by it but does
	// not enforce it (default: expsync.yaml's defaults, else none).
	Memory string `json:"memory,omitempty" yaml:"memory,omitempty"`
	// GPU is a count of GPUResource (default "nvidia.com/gpu").
	GPU int `json:"gpu,omitempty" yaml:"gpu,omitempty"`
	// GPUResource is the extended resource GPUs are requested as (default
	// "nvidia.com/gpu").
	GPUResource string `json:"gpuResource,omitempty" yaml:"gpuResource,omitempty"`
	// EphemeralStorage is the pod's ephemeral-storage request and limit
	// (Kubernetes mode), a quantity ("1Gi").
	EphemeralStorage string `json:"ephemeralStorage,omitempty" yaml:"ephemeralStorage,omitempty"`
}

// Retries says how often a failed attempt is retried and which exit codes
// mean "transient"; infrastructure failures always retry.
type Retries struct {
	// Limit is how many times a transient failure is retried (default 0).
	Limit int `json:"limit,omitempty" yaml:"limit,omitempty"`
	// OnExitCodes are the command's exit codes that mean "transient, try
	// again"; any other failure is the run's result.
	OnExitCodes []int32 `json:"onExitCodes,omitempty" yaml:"onExitCodes,omitempty"`
}

// Toleration mirrors core/v1 Toleration.
type Toleration struct {
	// Key is the taint's key (empty with operator Exists: every taint).
	Key string `json:"key,omitempty" yaml:"key,omitempty"`
	// Operator is Equal or Exists (default Equal).
	Operator string `json:"operator,omitempty" yaml:"operator,omitempty"`
	// Value is the taint's value (operator Equal).
	Value string `json:"value,omitempty" yaml:"value,omitempty"`
	// Effect is the taint effect tolerated: NoSchedule, PreferNoSchedule or
	// NoExecute (empty: every effect).
	Effect string `json:"effect,omitempty" yaml:"effect,omitempty"`
	// TolerationSeconds bounds how long a NoExecute taint is tolerated.
	TolerationSeconds *int64 `json:"tolerationSeconds,omitempty" yaml:"tolerationSeconds,omitempty"`
}

// RepositoryConfig is expsync.yaml at the repository root. Every field is
// optional; a repository without the file gets the defaults.
type RepositoryConfig struct {
	// APIVersion is "expsync.dev/v1alpha1" when set.
	APIVersion string `json:"apiVersion,omitempty" yaml:"apiVersion,omitempty"`
	// Kind is "RepositoryConfig" when set.
	Kind string `json:"kind,omitempty" yaml:"kind,omitempty"`
	// Experiments is the folder (from the root) searched recursively for
	// experiment files (*.yaml, *.yml); default "experiments".
	Experiments string `json:"experiments,omitempty" yaml:"experiments,omitempty"`
	// Results is the folder results are committed to; default "results". No
	// experiment's context may contain it.
	Results string `json:"results,omitempty" yaml:"results,omitempty"`
	// Ignore lists glob patterns (path.Match syntax, from the repository
	// root, for example "experiments/*/config/*") of files and folders under
	// the experiments folder that are not experiment files, such as YAML the
	// experiments' code reads.
	Ignore []string `json:"ignore,omitempty" yaml:"ignore,omitempty"`
	// Limits can only lower the built-in and the operator's limits.
	Limits Limits `json:"limits,omitempty" yaml:"limits,omitempty"`
	// Defaults are applied to every experiment's scheduling fields that it
	// (and its template) leave empty.
	Defaults *Defaults `json:"defaults,omitempty" yaml:"defaults,omitempty"`
}

// Defaults are repository-wide scheduling defaults; they never enter a run ID.
type Defaults struct {
	Resources Resources `json:"resources,omitempty" yaml:"resources,omitempty"`
	// Timeout per attempt of experiments that set none (default 1h).
	Timeout Duration `json:"timeout,omitempty" yaml:"timeout,omitempty"`
	// Queue is the Kueue LocalQueue of experiments that set none.
	Queue string `json:"queue,omitempty" yaml:"queue,omitempty"`
	// PriorityClassName of experiments that set none.
	PriorityClassName string `json:"priorityClassName,omitempty" yaml:"priorityClassName,omitempty"`
}

// Limits bound what a repository may ask for. Zero means "not set" (the
// tighter of the other sources applies).
type Limits struct {
	// MaxFileBytes bounds each YAML file read (config, experiments, templates).
	MaxFileBytes int64 `json:"maxFileBytes,omitempty" yaml:"maxFileBytes,omitempty"`
	// MaxTotalBytes bounds all YAML files read for one repository together.
	MaxTotalBytes int64 `json:"maxTotalBytes,omitempty" yaml:"maxTotalBytes,omitempty"`
	// MaxDocuments bounds the YAML documents per file.
	MaxDocuments int `json:"maxDocuments,omitempty" yaml:"maxDocuments,omitempty"`
	// MaxYAMLNodes bounds the nodes of one file, aliases expanded.
	MaxYAMLNodes int `json:"maxYAMLNodes,omitempty" yaml:"maxYAMLNodes,omitempty"`
	// MaxAliases bounds the alias uses of one file.
	MaxAliases int `json:"maxAliases,omitempty" yaml:"maxAliases,omitempty"`
	// MaxFiles bounds the experiment files of a repository.
	MaxFiles int `json:"maxFiles,omitempty" yaml:"maxFiles,omitempty"`
	// MaxRunsPerExperiment bounds one experiment's points × repeat.
	MaxRunsPerExperiment int `json:"maxRunsPerExperiment,omitempty" yaml:"maxRunsPerExperiment,omitempty"`
	// MaxRuns bounds the runs of the whole repository.
	MaxRuns int `json:"maxRuns,omitempty" yaml:"maxRuns,omitempty"`
	// MaxRepeat bounds spec.repeat.
	MaxRepeat int `json:"maxRepeat,omitempty" yaml:"maxRepeat,omitempty"`
	// MaxTimeout bounds spec.timeout.
	MaxTimeout Duration `json:"maxTimeout,omitempty" yaml:"maxTimeout,omitempty"`
	// MaxRetries bounds spec.retries.limit.
	MaxRetries int `json:"maxRetries,omitempty" yaml:"maxRetries,omitempty"`
	// MaxGPUs bounds spec.resources.gpu.
	MaxGPUs int `json:"maxGPUs,omitempty" yaml:"maxGPUs,omitempty"`
	// MaxOutputBytes bounds a run's outputs (enforced by the runner).
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty" yaml:"maxOutputBytes,omitempty"`
	// MaxLogBytes bounds a run's captured log (enforced by the runner).
	MaxLogBytes int64 `json:"maxLogBytes,omitempty" yaml:"maxLogBytes,omitempty"`
	// MaxOutputFiles bounds the files of a run's outputs (contract.MaxOutputFiles
	// at most: its run.json and attestation list each one).
	MaxOutputFiles int `json:"maxOutputFiles,omitempty" yaml:"maxOutputFiles,omitempty"`
}

// Duration is a time.Duration written as a Go duration string ("30m", "1h30m").
type Duration struct{ time.Duration }

// MarshalJSON writes the duration as a string.
func (d Duration) MarshalJSON() ([]byte, error) {
	return []byte(`"` + d.String() + `"`), nil
}

// UnmarshalJSON reads a duration string.
func (d *Duration) UnmarshalJSON(b []byte) error {
	s := strings.Trim(string(b), `"`)
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("duration %q: %w", s, err)
	}
	d.Duration = v
	return nil
}

// MarshalYAML writes the duration as a string.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// IsZero lets omitempty drop unset durations.
func (d Duration) IsZero() bool { return d.Duration == 0 }
