package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
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
	RunStore           string
	VerifyInputsOnly   bool
	WorkDir            string
	ResultFile         string
	TerminationMessage string
	SecretsFile        string
	WorkRoot           string
	CopySelfTo         string
	PreparedDir        string
	Retry              bool
	Cache              bool
	KeepWork           bool
}

func init() {
	commands = append(commands, func() *cobra.Command {
		o := &execOptions{}
		cmd := &cobra.Command{
			Use:   "exec --contract FILE",
			Short: "Execute one run contract (what a Kubernetes pod runs)",
			Long: `Execute one run contract: materialise and verify the context and inputs,
run the command, hash the outputs into the store and write the result JSON
(to --result and, as a blob, to the store) and a short JSON termination
message (to /dev/termination-log when present). This is a Kubernetes pod's
main container: one attempt (retries are the Job's, by exit code; --retry
applies the contract's retries here instead).

With --verify-inputs-only it only materialises the context and inputs into
--work-dir, rehashing every file, and writes a short JSON termination
message: the pod's init container (--copy-self-to copies this binary into a
volume the run's image mounts).

Exit codes are what the Job's podFailurePolicy reads: 0 succeeded (or the
inputs verified); the command's own exit code when it failed (128+n when
killed by signal n; 1 when it exited 0 but its outputs failed); 124 timed
out; 143 cancelled (SIGTERM); 65 an input's digest is wrong; 222 the runner
itself failed (a store or URL unreachable: retry); 2 usage or an unreadable
contract.`,
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
		f.StringVar(&o.RunStore, "run-store", "", "the run's own store (a pod's prefix of the store claim): --store is then only read, and everything the run stores goes here")
		f.BoolVar(&o.VerifyInputsOnly, "verify-inputs-only", false, "only materialise and verify the context and inputs into --work-dir")
		f.StringVar(&o.WorkDir, "work-dir", "", "with --verify-inputs-only: the folder to materialise into (made, or emptied)")
		f.StringVar(&o.ResultFile, "result", "", "write the result JSON to this file (default: standard output)")
		f.StringVar(&o.TerminationMessage, "termination-message", "", "termination message file (default /dev/termination-log when it exists)")
		f.StringVar(&o.SecretsFile, "secrets-file", "", "YAML file {secret: {key: value}} for secretRef variables (default: EXPSYNC_SECRET_<NAME>_<KEY> variables)")
		f.StringVar(&o.WorkRoot, "work-root", "", "where attempt folders are made (default <store>/work)")
		f.StringVar(&o.CopySelfTo, "copy-self-to", "", "first copy this binary to this path (mode 0755), for a pod's run container")
		f.StringVar(&o.PreparedDir, "prepared-dir", "", "run in this folder, already filled and verified by --verify-inputs-only (the pod's init container)")
		f.BoolVar(&o.Retry, "retry", false, "apply the contract's retries here (default: one attempt; the caller retries by exit code)")
		f.BoolVar(&o.KeepWork, "keep-work", false, "keep the attempt folders (under --work-root) for inspection")
		f.BoolVar(&o.Cache, "cache", false, "also record the result in the store's run cache (trusted, local use only)")
		_ = cmd.MarkFlagRequired("contract")
		return cmd
	})
}

// Exec runs the verb; out receives the result when --result is not set.
func (o *execOptions) Exec(ctx context.Context, out io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	if o.CopySelfTo != "" {
		if err := copySelf(o.CopySelfTo); err != nil {
			return &exitError{code: contract.ExitInfrastructure, err: err}
		}
	}
	c, contractSHA, err := readContract(o.ContractFile)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	st, err := o.openStore(c)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	// In a pod, Kubernetes injects each secretRef under the variable's own
	// name (render's secretKeyRef); the command still sees only what the
	// contract declares.
	opts := runner.Options{Store: st, SecretsFile: o.SecretsFile, WorkRoot: o.WorkRoot, SingleAttempt: !o.Retry,
		SecretsFromVariables: true, PreparedWork: o.PreparedDir, KeepWork: o.KeepWork}
	if o.VerifyInputsOnly {
		return o.verifyInputs(ctx, c, contractSHA, opts)
	}
	res, err := runner.Run(ctx, c, opts)
	if err != nil {
		return &exitError{code: 2, err: err}
	}
	data, err := contract.MarshalResult(res)
	if err != nil {
		return &exitError{code: contract.ExitInfrastructure, err: err}
	}
	// The full result is a blob of the store, named in the termination
	// message, so a controller can read it without the pod's files. It is
	// recorded even when a SIGTERM cancelled the run.
	ctx = context.WithoutCancel(ctx)
	obj, err := st.Put(ctx, bytes.NewReader(data), "")
	if err != nil {
		return &exitError{code: contract.ExitInfrastructure, err: fmt.Errorf("store the result: %w", err)}
	}
	if o.Cache {
		if err := runner.StoreResult(ctx, st, res); err != nil {
			return &exitError{code: contract.ExitInfrastructure, err: err}
		}
	}
	if err := writeOut(o.ResultFile, out, append(data, '\n')); err != nil {
		return &exitError{code: contract.ExitInfrastructure, err: err}
	}
	if err := o.writeTermination(runSummary(res, obj.SHA256)); err != nil {
		return &exitError{code: contract.ExitInfrastructure, err: err}
	}
	if code := runner.ExitCode(res); code != 0 {
		return &exitError{code: code, err: fmt.Errorf("run %s: %s: %s", res.RunID, res.Status, res.Error)}
	}
	return nil
}

// openStore opens the store the run reads and writes: --store (or the
// contract's), or with --run-store an overlay that reads --store and
// writes the run's own store.
func (o *execOptions) openStore(c contract.Contract) (store.Store, error) {
	location := o.Store
	if location == "" {
		location = c.Store
	}
	st, err := store.Open(location)
	if err != nil {
		return nil, err
	}
	if o.RunStore == "" {
		return st, nil
	}
	own, err := store.Open(o.RunStore)
	if err != nil {
		return nil, err
	}
	return &store.Overlay{Lower: st, Upper: own}, nil
}

// summary is the main container's termination message: the verdict and
// the digest of the full result in the store.
type summary struct {
	RunID        string          `json:"runID"`
	Status       contract.Status `json:"status"`
	ExitCode     int             `json:"exitCode"`
	Signal       string          `json:"signal,omitempty"`
	Attempts     int             `json:"attempts"`
	StartedAt    string          `json:"startedAt"`
	FinishedAt   string          `json:"finishedAt"`
	LogSHA256    string          `json:"logSHA256,omitempty"`
	ResultSHA256 string          `json:"resultSHA256"`
	Error        string          `json:"error,omitempty"`
}

func runSummary(r *contract.Result, resultSHA string) summary {
	return summary{RunID: r.RunID, Status: r.Status, ExitCode: r.ExitCode, Signal: r.Signal, Attempts: r.Attempts,
		StartedAt: r.StartedAt.Format(time.RFC3339Nano), FinishedAt: r.FinishedAt.Format(time.RFC3339Nano),
		LogSHA256: r.LogSHA256, ResultSHA256: resultSHA, Error: shorten(r.Error, 1024)}
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// copySelf copies the running binary to dst, atomically, executable.
func copySelf(dst string) error {
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("copy self: %w", err)
	}
	in, err := os.Open(self)
	if err != nil {
		return fmt.Errorf("copy self: %w", err)
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return fmt.Errorf("copy self: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".expsync-*")
	if err != nil {
		return fmt.Errorf("copy self: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, in); err != nil {
		tmp.Close()
		return fmt.Errorf("copy self: %w", err)
	}
	if err := tmp.Chmod(0o755); err != nil {
		tmp.Close()
		return fmt.Errorf("copy self: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("copy self: %w", err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return fmt.Errorf("copy self: %w", err)
	}
	return nil
}

// verification is the termination message of --verify-inputs-only: the
// controller trusts it (the init container runs the runner image, before
// any code under test), so it names the contract it read by digest.
type verification struct {
	RunID          string         `json:"runID"`
	ContractSHA256 string         `json:"contractSHA256"`
	Verified       bool           `json:"verified"`
	ContextTree    string         `json:"contextTree,omitempty"`
	Inputs         []verifiedFile `json:"inputs,omitempty"`
	Mismatch       *mismatch      `json:"mismatch,omitempty"`
	Error          string         `json:"error,omitempty"`
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

func (o *execOptions) verifyInputs(ctx context.Context, c contract.Contract, contractSHA string, opts runner.Options) error {
	if o.WorkDir == "" {
		return &exitError{code: 2, err: errors.New("--verify-inputs-only needs --work-dir")}
	}
	v := verification{RunID: c.RunID, ContractSHA256: contractSHA, ContextTree: c.Context.Tree}
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
		return &exitError{code: contract.ExitInfrastructure, err: werr}
	}
	switch {
	case err == nil:
		return nil
	case v.Mismatch != nil:
		return &exitError{code: contract.ExitInputMismatch, err: err}
	default:
		// A store or URL unreachable: the Job retries.
		return &exitError{code: contract.ExitInfrastructure, err: err}
	}
}

// writeTermination writes a termination message (nowhere when there is no
// --termination-message and no /dev/termination-log).
func (o *execOptions) writeTermination(msg any) error {
	path := o.TerminationMessage
	if path == "" {
		if _, err := os.Stat(defaultTerminationLog); err != nil {
			return nil
		}
		path = defaultTerminationLog
	}
	data, err := json.Marshal(msg)
	if err != nil {
		return err
	}
	if v, ok := msg.(verification); ok && len(data) > maxTerminationMessage {
		v.Inputs = nil // the contract lists them; keep the verdict
		v.Error = shorten(v.Error, 1024)
		data, _ = json.Marshal(v)
	}
	if path == "-" {
		_, err := fmt.Fprintln(os.Stderr, string(data))
		return err
	}
	return os.WriteFile(path, data, 0o644)
}

// readContract reads and checks a contract file and returns it with the
// sha256 of its bytes.
func readContract(path string) (contract.Contract, string, error) {
	var c contract.Contract
	data, err := os.ReadFile(path)
	if err != nil {
		return c, "", fmt.Errorf("read contract: %w", err)
	}
	if err := json.Unmarshal(data, &c); err != nil {
		return c, "", fmt.Errorf("contract %s: %w", path, err)
	}
	if err := runner.Validate(c); err != nil {
		return c, "", fmt.Errorf("contract %s: %w", path, err)
	}
	sum := sha256.Sum256(data)
	return c, hex.EncodeToString(sum[:]), nil
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
