// Command expsync is the CLI of expsync: a GitOps reconciler for experiment
// repositories. Each verb lives in its own file as an options struct with an
// Exec method (testable without cobra) and a constructor that registers it.
package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/spf13/cobra"
)

// commands holds the constructors of every verb; each verb's file appends
// its own in an init function so adding a verb never touches this file.
var commands []func() *cobra.Command

// exitError carries a process exit code through cobra (1: the input failed a
// check, 2: the command was used wrongly).
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func newRootCmd() *cobra.Command {
	root := &cobra.Command{
		Use:           "expsync",
		Short:         "Run the experiments a Git repository describes, attest them and commit the results back",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error {
		return &exitError{code: 2, err: err}
	})
	for _, newCmd := range commands {
		root.AddCommand(newCmd())
	}
	return root
}

func main() {
	os.Exit(run(os.Args[1:]))
}

func run(args []string) int {
	root := newRootCmd()
	root.SetArgs(args)
	if err := root.Execute(); err != nil {
		var ee *exitError
		if errors.As(err, &ee) {
			if ee.err != nil && ee.err.Error() != "" {
				fmt.Fprintln(os.Stderr, "expsync:", ee.err)
			}
			return ee.code
		}
		fmt.Fprintln(os.Stderr, "expsync:", err)
		return 2
	}
	return 0
}
