package v1alpha1

import (
	"fmt"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/expsync/expsync/tree"
)

func (c checker) scheduling() {
	s := c.e.Spec
	for _, q := range []struct{ field, val string }{{"spec.resources.cpu", s.Resources.CPU}, {"spec.resources.memory", s.Resources.Memory}, {"spec.resources.ephemeralStorage", s.Resources.EphemeralStorage}} {
		if q.val == "" {
			continue
		}
		v, err := resource.ParseQuantity(q.val)
		if err != nil || v.Sign() <= 0 {
			c.errorf(q.field, "%q must be a positive quantity such as 500m, 2, 512Mi or 4Gi", q.val)
		}
	}
	if s.Resources.GPU < 0 {
		c.errorf("spec.resources.gpu", "must not be negative")
	} else if c.lim.MaxGPUs > 0 && s.Resources.GPU > c.lim.MaxGPUs {
		c.errorf("spec.resources.gpu", "%d is above the limit %d (limits.maxGPUs)", s.Resources.GPU, c.lim.MaxGPUs)
	}
	if g := s.Resources.GPUResource; g != "" && len(validation.IsQualifiedName(g)) > 0 {
		c.errorf("spec.resources.gpuResource", "%q must be a resource name such as nvidia.com/gpu", g)
	}
	if c.lim.MaxTimeout.Duration > 0 && s.Timeout.Duration > c.lim.MaxTimeout.Duration {
		c.errorf("spec.timeout", "%s is above the limit %s (limits.maxTimeout)", s.Timeout.Duration, c.lim.MaxTimeout.Duration)
	}
	if s.Retries.Limit < 0 {
		c.errorf("spec.retries.limit", "must not be negative")
	} else if c.lim.MaxRetries > 0 && s.Retries.Limit > c.lim.MaxRetries {
		c.errorf("spec.retries.limit", "%d is above the limit %d (limits.maxRetries)", s.Retries.Limit, c.lim.MaxRetries)
	}
	codes := map[int32]bool{}
	for i, code := range s.Retries.OnExitCodes {
		f := fmt.Sprintf("spec.retries.onExitCodes[%d]", i)
		switch {
		case code < 1 || code > 255:
			c.errorf(f, "%d is not an exit code meaning failure (1-255)", code)
		case codes[code]:
			c.errorf(f, "%d is listed twice", code)
		}
		codes[code] = true
	}
	if q := s.Queue; q != "" {
		for _, msg := range validation.IsDNS1123Label(q) {
			c.errorf("spec.queue", "%q: %s", q, msg)
		}
	}
	if p := s.PriorityClassName; p != "" {
		for _, msg := range validation.IsDNS1123Subdomain(p) {
			c.errorf("spec.priorityClassName", "%q: %s", p, msg)
		}
	}
	for _, k := range sortedKeys(s.NodeSelector) {
		for _, msg := range validation.IsQualifiedName(k) {
			c.errorf("spec.nodeSelector."+k, "key %q: %s", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(s.NodeSelector[k]) {
			c.errorf("spec.nodeSelector."+k, "%s", msg)
		}
	}
	for i, t := range s.Tolerations {
		f := fmt.Sprintf("spec.tolerations[%d]", i)
		switch t.Operator {
		case "", "Equal":
			if t.Key == "" {
				c.errorf(f, "operator Equal needs a key; use operator Exists to tolerate every taint")
			}
		case "Exists":
			if t.Value != "" {
				c.errorf(f+".value", "must be empty when operator is Exists")
			}
		default:
			c.errorf(f+".operator", "%q must be Equal or Exists", t.Operator)
		}
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				c.errorf(f+".key", "%q: %s", t.Key, msg)
			}
		}
		switch t.Effect {
		case "", "NoSchedule", "PreferNoSchedule", "NoExecute":
		default:
			c.errorf(f+".effect", "%q must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
		}
		if t.TolerationSeconds != nil && t.Effect != "NoExecute" {
			c.errorf(f+".tolerationSeconds", "only applies with effect NoExecute")
		}
	}
}

// context checks the context folder: inside the repository, present, and
// not holding the results folder (a results commit must never change an ID).
func (c checker) context(r tree.Reader, cfg RepositoryConfig) {
	field, ctx := "spec.context", c.e.Spec.Context
	if ctx == "" {
		field, ctx = "", dirOf(c.e.Source.Path)
	} else {
		clean, err := tree.Clean(ctx)
		if err != nil {
			c.errorf(field, "%q must be a folder of the repository, from its root (no '..', not absolute)", ctx)
			return
		}
		ctx = clean
	}
	at := func(format string, args ...any) {
		if field == "" {
			c.errs.add(c.e.Pos(""), "spec.context (default: the experiment file's folder %q): %s", ctx, fmt.Sprintf(format, args...))
			return
		}
		c.errorf(field, format, args...)
	}
	if tree.Contains(ctx, cfg.Results) {
		at("%q contains the results folder %q; set a context that does not, so results commits never change run IDs", displayPath(ctx), cfg.Results)
		return
	}
	e, err := r.Stat(ctx)
	switch {
	case err != nil:
		at("folder %q not found in the repository (contexts are paths from the repository root)", displayPath(ctx))
	case !e.IsDir():
		at("%q is not a folder", displayPath(ctx))
	}
}

func dirOf(p string) string {
	d, _ := tree.Split(p)
	return d
}

func displayPath(p string) string {
	if p == "" {
		return "."
	}
	return p
}
