// Package contract defines the run contract: the versioned JSON document that
// tells a runner exactly what to execute for one run, and the run identity
// from which a run's content-addressed ID is computed.
//
// render produces contracts; the local executor and `expsync exec` in a pod
// execute them; attest records them as byproducts. The package holds types and
// the ID recipe only, so every side can depend on it without pulling in
// Kubernetes or Git.
//
// It is also the vocabulary every runner and executor shares: a run's
// Result, its Status, Usage and Requests, and the exit codes a pod reports.
//
// This package is part of expsync's supported Go API (see "Go packages" in
// the README); the packages under internal/ are not.
package contract

import "time"

// Version is the contract format version. A runner refuses contracts of a
// version it does not know.
const Version = "expsync.dev/contract/v1"

// HostImage is the image name of runs executed as processes on the host.
const HostImage = "host"

// Contract is everything a runner needs to execute one run, and nothing it
// could use to reach Git or a secret value.
type Contract struct {
	Version    string `json:"version"`
	RunID      string `json:"runID"`
	Experiment string `json:"experiment"`
	// Identity is the document whose canonical form hashes to RunID.
	Identity Identity `json:"identity"`

	// Image is a digest-pinned image reference, or HostImage.
	Image string `json:"image"`
	// Command is the command after templating; Command[0] is the program.
	Command []string `json:"command"`
	Env     []EnvVar `json:"env,omitempty"`

	// Context is the repository subtree materialised as the work folder; the
	// command runs at its root.
	Context Context `json:"context"`
	Inputs  []Input `json:"inputs,omitempty"`
	// Outputs are files or folders (ending in "/") relative to the work folder.
	Outputs []string `json:"outputs,omitempty"`
	// Metrics is a flat JSON object of numbers relative to the work folder.
	Metrics string `json:"metrics,omitempty"`

	Limits  Limits  `json:"limits"`
	Retries Retries `json:"retries"`
	// Store locates the content-addressed store (for example
	// "file:///var/lib/expsync/store"), where the context, repository inputs
	// and outputs live by digest.
	Store string `json:"store"`
}

// EnvVar is a declared variable: a literal Value or a SecretRef whose value
// the runner resolves at start and never records.
type EnvVar struct {
	Name      string     `json:"name"`
	Value     string     `json:"value,omitempty"`
	SecretRef *SecretRef `json:"secretRef,omitempty"`
}

// SecretRef names a secret by name and key; its value never enters a
// contract, an ID, a log or an attestation.
type SecretRef struct {
	Name string `json:"name"`
	Key  string `json:"key"`
}

// Context is a repository subtree, exported to the store by its Git tree ID.
type Context struct {
	// Path is the subtree's path in the repository ("" for the root).
	Path string `json:"path"`
	// Tree is the subtree's real Git tree ID, spec files included: what the
	// runner materialises as the work folder, and what provenance names
	// (reachable in Git, so a reviewer can check out exactly this).
	Tree string `json:"tree"`
	// Excluded are the paths, relative to Path and sorted, of the
	// repository's spec files (experiment files, templates, expsync.yaml)
	// inside the context. The identity's contextTree is the Git tree ID of
	// Tree with them removed (empty folders vanishing, as in Git), so
	// editing a spec moves only the IDs its own fields move; a verifier
	// recomputes it from Tree and this list.
	Excluded []string `json:"excluded,omitempty"`
}

// Input is a file the runner places in the work folder before the command
// starts, after checking its digest.
type Input struct {
	Name string `json:"name"`
	// Path is where the runner places the file, relative to the work folder.
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// URI is where to fetch the file from when the store lacks it (https:// or
	// s3:// and so on); empty for repository files, which are in the store.
	URI string `json:"uri,omitempty"`
	// RepoPath and GitBlob are set for files of the repository.
	RepoPath string `json:"repoPath,omitempty"`
	GitBlob  string `json:"gitBlob,omitempty"`
}

// Limits bound one attempt of a run.
type Limits struct {
	// Timeout is per attempt; zero means the runner's default.
	Timeout Duration `json:"timeout,omitempty"`
	// CPU and Memory are the requests in Kubernetes quantity syntax ("1",
	// "500m", "512Mi"); the local executor admits runs by them.
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
	GPU    int    `json:"gpu,omitempty"`
	// MaxOutputBytes bounds the total size of the declared outputs.
	MaxOutputBytes int64 `json:"maxOutputBytes,omitempty"`
	// MaxLogBytes bounds the captured stdout+stderr.
	MaxLogBytes int64 `json:"maxLogBytes,omitempty"`
	// MaxOutputFiles bounds the number of output files, when the
	// repository lowers it below MaxOutputFiles (0: that builtin limit;
	// left out otherwise, so existing contracts keep their scheduling
	// digests).
	MaxOutputFiles int `json:"maxOutputFiles,omitempty"`
}

// OutputFiles is the limit on a run's output files: MaxOutputFiles when
// the repository lowered it, the builtin MaxOutputFiles otherwise. The
// runner and the Job executor's collection apply it alike.
func (l Limits) OutputFiles() int {
	if l.MaxOutputFiles > 0 && l.MaxOutputFiles < MaxOutputFiles {
		return l.MaxOutputFiles
	}
	return MaxOutputFiles
}

// Retries says which failures are transient.
type Retries struct {
	// Limit is the number of retries after the first attempt.
	Limit int `json:"limit"`
	// OnExitCodes are the exit codes that mean "transient: try again".
	// Infrastructure failures always retry.
	OnExitCodes []int32 `json:"onExitCodes,omitempty"`
}

// Duration is a time.Duration that encodes as a Go duration string ("30m").
type Duration struct{ time.Duration }
