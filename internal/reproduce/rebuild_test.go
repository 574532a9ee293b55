package reproduce

import (
	"strings"
	"testing"

	"github.com/expsync/expsync/contract"
)

// TestAgreeRefusesAContractThatRanSomethingElse: the signed contract must
// execute what the identity says; any field the runner acts on that
// differs is named.
func TestAgreeRefusesAContractThatRanSomethingElse(t *testing.T) {
	base := contract.Contract{RunID: "r", Command: []string{"sh", "-c", "true"},
		Env:     []contract.EnvVar{{Name: "A", Value: "1"}, {Name: "S", SecretRef: &contract.SecretRef{Name: "s", Key: "k"}}},
		Context: contract.Context{Path: "code", Tree: "t", Excluded: []string{"a.yaml"}},
		Inputs:  []contract.Input{{Name: "b", Path: "in/b", SHA256: "2"}, {Name: "a", Path: "in/a", SHA256: "1"}},
		Outputs: []string{"out/"}, Metrics: "m.json"}
	same := base
	same.Inputs = []contract.Input{base.Inputs[1], {Name: "b", Path: "in/b", SHA256: "2", URI: "https://x"}}
	same.Limits = contract.Limits{CPU: "2"}
	if err := agree(base, same); err != nil {
		t.Fatalf("input order, URIs and limits are not what ran: %v", err)
	}
	for name, mutate := range map[string]func(*contract.Contract){
		"command":              func(c *contract.Contract) { c.Command = []string{"sh", "-c", "false"} },
		"environment":          func(c *contract.Contract) { c.Env = c.Env[:1] },
		"context tree":         func(c *contract.Contract) { c.Context.Tree = "u" },
		"context's spec files": func(c *contract.Contract) { c.Context.Excluded = nil },
		"inputs":               func(c *contract.Contract) { c.Inputs = []contract.Input{{Name: "a", Path: "in/a", SHA256: "9"}} },
		"outputs":              func(c *contract.Contract) { c.Outputs = []string{"out/x"} },
		"metrics":              func(c *contract.Contract) { c.Metrics = "" },
	} {
		other := base
		other.Env = append([]contract.EnvVar(nil), base.Env...)
		mutate(&other)
		err := agree(base, other)
		if err == nil || !strings.Contains(err.Error(), "disagree on the "+name) {
			t.Errorf("%s: %v", name, err)
		}
	}
}
