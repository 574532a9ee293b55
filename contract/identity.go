package contract

// IDVersion is the version of the run-ID recipe. Bump it only when the recipe
// changes; a release that changes a default must not silently move IDs.
const IDVersion = 1

// Identity is everything that determines a run's result, and nothing else:
// scheduling fields (resources, timeout, retries, queue, priority, placement)
// and the sweep definition are deliberately absent. The run ID is the sha256
// of its canonical JSON (RFC 8785).
//
// The api/render owner completes this type and its ID method; keep field names
// stable once IDs are published.
type Identity struct {
	IDVersion  int    `json:"idVersion"`
	Experiment string `json:"experiment"`
	// Image is the image digest reference, or HostImage.
	Image   string         `json:"image"`
	Command []string       `json:"command"`
	Env     []EnvVar       `json:"env,omitempty"`
	Params  map[string]any `json:"params,omitempty"`
	// ContextTree is the Git tree ID of the experiment's context.
	ContextTree string          `json:"contextTree"`
	Inputs      []IdentityInput `json:"inputs,omitempty"`
	Outputs     []string        `json:"outputs,omitempty"`
	Metrics     string          `json:"metrics,omitempty"`
	// Repeat distinguishes explicit reruns of the same point (0 = first).
	Repeat int `json:"repeat,omitempty"`
}

// IdentityInput is an input as far as it determines the result.
type IdentityInput struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
}
