package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/runner"
	"github.com/expsync/expsync/store"
)

// defaultTerminationLog is where Kubernetes reads a container's termination
// message.
const defaultTerminationLog = "/dev/termination-log"

// maxTerminationMessage is Kubernetes' limit for a termination message.
const maxTerminationMessage = 4096

// execOptions is `expsync exec`: run one contract, as a pod does.
type execOptions struct {
	ContractFile       string
	Store              string
	VerifyInputsOnly   bool
	WorkDir            string
	ResultFile         string
	TerminationMessage string
	SecretsFile        string
	WorkRoot           string
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &execOptions{}
		cmd := &cobra.Command{
			Use:   "exec --contract FILE",
			Short: "Execute one run contract (what a Kubernetes pod runs)",
			Long: `Execute one run contract: materialise and verify the context and inputs,
run the command, hash the outputs into the store and write the result JSON.

With --verify-inputs-only it only materialises and verifies the context and
inputs into --work-dir and writes a short JSON termination message (to
/dev/termination-log when present): the Kubernetes init container.

Exit codes: 0 the run succeeded (or the inputs verified), 1 it did not,
2 usage or an unreadable contract.`,
			Args: cobra.NoArgs,
			RunE: func(c *cobra.Command, _ []string) error {
				// SIGTERM (a pod being deleted) cancels the run: its process
				// group gets SIGTERM, then SIGKILL after the grace period.
				ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
				defer stop()
				return o.Exec(ctx, c.OutOrStdout())
			},
		}
		f := cmd.Flags()
		f.StringVar(&o.ContractFile, "contract", "", "run contract JSON file (required)")
		f.StringVar(&o.Store, "store", "", "store folder or file:// URL (default: the contract's store)")
		f.BoolVar(&o.VerifyInputsOnly, "verify-inputs-only", false, "only materialise and verify the context and inputs into --work-dir")
		f.StringVar(&o.WorkDir, "work-dir", "", "with --verify-inputs-only: the folder to materialise into (must not exist)")
		f.StringVar(&o.ResultFile, "result", "", "write the result JSON to this file (default: standard output)")
		f.StringVar(&o.TerminationMessage, "termination-message", "", "termination message file (default /dev/termination-log when it exists)")
		f.StringVar(&o.SecretsFile, "secrets-file", "", "YAML file {secret: {key: value}} for secretRef variables (default: EXPSYNC_SECRET_<NAME>_<KEY> variables)")
		f.StringVar(&o.WorkRoot, "work-root", "", "where attempt folders are made (default $TMPDIR/expsync-work)")
		_ = cmd.MarkFlagRequired("contract")
		return cmd
	})
}

// Exec runs the verb; out receives the result when --result is not set.
func (o *execOptions) Exec(ctx context.Context, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	c, err := readContract(o.ContractFile)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	location := o.Store
	if location == "" {
		location = c.Store
	}
	st, err := store.Open(location)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	opts := runner.Options{Store: st, SecretsFile: o.SecretsFile, WorkRoot: o.WorkRoot}
	if o.VerifyInputsOnly {
		return o.verifyInputs(ctx, c, opts)
	}
	res, err := runner.Run(ctx, c, opts)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	if err := runner.StoreResult(ctx, st, res); err != nil {
		fmt.Fprintln(os.Stderr, "expsync: warning:", err)
	}
	data, err := runner.MarshalResult(res)
	if err != nil {
		return err
	}
	if err := writeOut(o.ResultFile, out, append(data, '\n')); err != nil {
		return err
	}
	if res.Status != runner.Succeeded {
		return &exitError{code: 1, err: fmt.Errorf("run %s: %s: %s", res.RunID, res.Status, res.Error)}
	}
	return nil
}

// verification is the termination message of --verify-inputs-only.
type verification struct {
	RunID       string         `json:"runID"`
	Verified    bool           `json:"verified"`
	ContextTree string         `json:"contextTree,omitempty"`
	Inputs      []verifiedFile `json:"inputs,omitempty"`
	Mismatch    *mismatch      `json:"mismatch,omitempty"`
	Error       string         `json:"error,omitempty"`
}

type verifiedFile struct {
	Name   string `json:"name"`
	SHA256 string `json:"sha256"`
}

type mismatch struct {
	Input string `json:"input"`
	Want  string `json:"want"`
	Got   string `json:"got"`
}

func (o *execOptions) verifyInputs(ctx context.Context, c contract.Contract, opts runner.Options) error {
	if o.WorkDir == "" {
		return &exitError{code: 2, err: errors.New("--verify-inputs-only needs --work-dir")}
	}
	v := verification{RunID: c.RunID, ContextTree: c.Context.Tree}
	err := runner.Materialise(ctx, c, opts, o.WorkDir)
	var mm *runner.InputMismatchError
	switch {
	case err == nil:
		v.Verified = true
		for _, in := range c.Inputs {
			v.Inputs = append(v.Inputs, verifiedFile{Name: in.Name, SHA256: in.SHA256})
		}
	case errors.As(err, &mm):
		v.Mismatch = &mismatch{Input: mm.What, Want: mm.Want, Got: mm.Got}
		v.Error = err.Error()
	default:
		v.Error = err.Error()
	}
	if werr := o.writeTermination(v); werr != nil {
		return werr
	}
	if err != nil {
		return &exitError{code: 1, err: err}
	}
	return nil
}

// writeTermination writes the message, shortened to Kubernetes' limit.
func (o *execOptions) writeTermination(v verification) error {
	path := o.TerminationMessage
	if path == "" {
		if _, err := os.Stat(defaultTerminationLog); err != nil {
			path = "-"
		} else {
			path = defaultTerminationLog
		}
	}
	data, _ := json.Marshal(v)
	if len(data) > maxTerminationMessage {
		v.Inputs = nil // the contract lists them; keep the verdict
		if len(v.Error) > 1024 {
			v.Error = v.Error[:1024] + "…"
		}
		data, _ = json.Marshal(v)
	}
	if path == "-" {
		_, err := fmt.Fprintln(os.Stdout, string(data))
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

func readContract(path string) (contract.Contract, error) {
	var c contract.Contract
	data, err := os.ReadFile(path)
	if err != nil {
		return c, fmt.Errorf("read contract: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, fmt.Errorf("contract %s: %w", path, err)
	}
	if err := runner.Validate(c); err != nil {
		return c, fmt.Errorf("contract %s: %w", path, err)
	}
	return c, nil
}

func writeOut(path string, out io.Writer, data []byte) error {
	if path == "" || path == "-" {
		_, err := out.Write(data)
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return os.WriteFile(path, data, 0o644)
}
