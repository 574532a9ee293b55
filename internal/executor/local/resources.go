package local

import (
	"fmt"
	"strconv"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
)

// request is what one run holds while it runs.
type request struct {
	cpuMilli int64
	memBytes int64
	gpus     int
}

func (e *Executor) requestOf(c contract.Contract) (request, error) {
	req := request{cpuMilli: e.opts.DefaultCPUMilli, memBytes: e.opts.DefaultMemoryBytes}
	if c.Limits.CPU != "" {
		q, err := resource.ParseQuantity(c.Limits.CPU)
		if err != nil || q.Sign() < 0 {
			return req, fmt.Errorf("run %s: cpu request %q is not a quantity such as \"1\" or \"500m\"", c.RunID, c.Limits.CPU)
		}
		req.cpuMilli = q.MilliValue()
	}
	if c.Limits.Memory != "" {
		q, err := resource.ParseQuantity(c.Limits.Memory)
		if err != nil || q.Sign() < 0 {
			return req, fmt.Errorf("run %s: memory request %q is not a quantity such as \"512Mi\"", c.RunID, c.Limits.Memory)
		}
		req.memBytes = q.Value()
	}
	req.gpus = c.Limits.GPU
	if req.gpus > e.capacity.gpus {
		return req, fmt.Errorf("run %s requests %d GPUs but this executor has %d: give expsync the machine's GPUs (expsync run --gpus N; gpus: N in serve's configuration; local runs see every GPU of the machine, expsync only counts them)", c.RunID, req.gpus, e.capacity.gpus)
	}
	if req.cpuMilli > e.capacity.cpuMilli {
		return req, fmt.Errorf("run %s requests %s CPUs but this executor has %s: lower resources.cpu to fit this machine", c.RunID, milli(req.cpuMilli), milli(e.capacity.cpuMilli))
	}
	if req.memBytes > e.capacity.memBytes {
		return req, fmt.Errorf("run %s requests %d bytes of memory but this executor has %d: lower resources.memory to fit this machine (its available memory when expsync started)", c.RunID, req.memBytes, e.capacity.memBytes)
	}
	return req, nil
}

func milli(m int64) string {
	return strconv.FormatFloat(float64(m)/1000, 'f', -1, 64)
}

// MemAvailable returns the machine's available memory
// (platform.MemAvailable: /proc/meminfo on Linux).
func MemAvailable() (int64, error) { return platform.MemAvailable() }
