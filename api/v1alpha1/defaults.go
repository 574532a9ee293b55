package v1alpha1

import (
	"time"

	"github.com/expsync/expsync/tree"
)

// All defaults live here. Those marked (identity) decide run IDs: changing
// one moves IDs and therefore needs a new contract.IDVersion.
const (
	DefaultExperimentsFolder = "experiments"
	DefaultResultsFolder     = "results"
	// DefaultTimeout is the per-attempt timeout when neither the experiment,
	// its template nor expsync.yaml sets one.
	DefaultTimeout = time.Hour
	// DefaultGPUResource is the extended resource GPUs are requested as.
	DefaultGPUResource = "nvidia.com/gpu"
	// DefaultInputFolder holds inputs that name no path (identity).
	DefaultInputFolder = "inputs"
	// MaxNameLength bounds experiment names so Job names (name + part of the
	// run ID) fit in 63 characters.
	MaxNameLength = 40
)

func applyConfigDefaults(c *RepositoryConfig) {
	if c.APIVersion == "" {
		c.APIVersion = APIVersion
	}
	if c.Kind == "" {
		c.Kind = KindRepositoryConfig
	}
	if c.Experiments == "" {
		c.Experiments = DefaultExperimentsFolder
	}
	if c.Results == "" {
		c.Results = DefaultResultsFolder
	}
}

// applyExperimentDefaults fills what the experiment left empty. It runs after
// validation of the written fields, so it only sees valid values.
func applyExperimentDefaults(e *Loaded, cfg RepositoryConfig, lim Limits) {
	s := &e.Spec
	if s.Context == "" {
		s.Context, _ = tree.Split(e.Source.Path) // (identity) the file's folder
	} else {
		s.Context, _ = tree.Clean(s.Context)
	}
	if s.Repeat == 0 {
		s.Repeat = 1
	}
	for i := range s.Inputs {
		if s.Inputs[i].Path == "" {
			s.Inputs[i].Path = DefaultInputFolder + "/" + s.Inputs[i].Name // (identity)
		}
	}
	if d := cfg.Defaults; d != nil {
		if s.Resources.CPU == "" {
			s.Resources.CPU = d.Resources.CPU
		}
		if s.Resources.Memory == "" {
			s.Resources.Memory = d.Resources.Memory
		}
		if s.Resources.EphemeralStorage == "" {
			s.Resources.EphemeralStorage = d.Resources.EphemeralStorage
		}
		if s.Resources.GPU == 0 {
			s.Resources.GPU = d.Resources.GPU
			if s.Resources.GPUResource == "" {
				s.Resources.GPUResource = d.Resources.GPUResource
			}
		}
		if s.Timeout.Duration == 0 {
			s.Timeout = d.Timeout
		}
		if s.Queue == "" {
			s.Queue = d.Queue
		}
		if s.PriorityClassName == "" {
			s.PriorityClassName = d.PriorityClassName
		}
	}
	if s.Resources.GPU > 0 && s.Resources.GPUResource == "" {
		s.Resources.GPUResource = DefaultGPUResource
	}
	if s.Timeout.Duration == 0 {
		s.Timeout = Duration{DefaultTimeout}
		if lim.MaxTimeout.Duration > 0 && lim.MaxTimeout.Duration < DefaultTimeout {
			s.Timeout = lim.MaxTimeout
		}
	}
}
