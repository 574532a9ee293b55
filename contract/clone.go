package contract

import (
	"maps"
	"slices"
)

// Clone returns a copy of c that shares nothing with it: a caller may
// change the copy (TestCloneSharesNothing holds every field to that).
func (c Contract) Clone() Contract {
	c.Identity = c.Identity.Clone()
	c.Command = slices.Clone(c.Command)
	c.Env = cloneEnv(c.Env)
	c.Context.Excluded = slices.Clone(c.Context.Excluded)
	c.Inputs = slices.Clone(c.Inputs)
	c.Outputs = slices.Clone(c.Outputs)
	c.Retries.OnExitCodes = slices.Clone(c.Retries.OnExitCodes)
	return c
}

// Clone returns a copy of i that shares nothing with it. Param values are
// scalars (the loader refuses anything else), so a shallow copy of the map
// is a deep one.
func (i Identity) Clone() Identity {
	i.Command = slices.Clone(i.Command)
	i.Env = cloneEnv(i.Env)
	i.Params = maps.Clone(i.Params)
	i.Inputs = slices.Clone(i.Inputs)
	i.Outputs = slices.Clone(i.Outputs)
	return i
}

func cloneEnv(env []EnvVar) []EnvVar {
	env = slices.Clone(env)
	for k, e := range env {
		if e.SecretRef != nil {
			ref := *e.SecretRef
			env[k].SecretRef = &ref
		}
	}
	return env
}
