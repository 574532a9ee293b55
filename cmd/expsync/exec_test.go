package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

func execSHA(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// execFixture is a store with an exported context and a contract file.
type execFixture struct {
	st       *store.Local
	contract contract.Contract
	file     string
}

func newExecFixture(t *testing.T, script string, inputs ...contract.Input) *execFixture {
	t.Helper()
	st, err := store.OpenLocal(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	id, err := store.ExportTree(context.Background(), st, tree.MemoryOf(map[string]string{"data.txt": "context data\n"}), "")
	if err != nil {
		t.Fatal(err)
	}
	c := contract.Contract{Version: contract.Version, RunID: execSHA(t.Name()), Experiment: "e", Image: contract.HostImage,
		Command: []string{"sh", "-c", script}, Context: contract.Context{Tree: string(id)}, Inputs: inputs,
		Outputs: []string{"out.txt"}, Store: "file://" + st.Root()}
	f := &execFixture{st: st, contract: c, file: filepath.Join(t.TempDir(), "contract.json")}
	data, _ := json.Marshal(c)
	if err := os.WriteFile(f.file, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return f
}

func TestExecRunsAContract(t *testing.T) {
	f := newExecFixture(t, `cat data.txt > out.txt`)
	resultFile, msgFile := filepath.Join(t.TempDir(), "result.json"), filepath.Join(t.TempDir(), "termination-log")
	o := &execOptions{ContractFile: f.file, ResultFile: resultFile, WorkRoot: t.TempDir(), TerminationMessage: msgFile, Cache: true}
	if err := o.Exec(context.Background(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	var res contract.Result
	data, _ := os.ReadFile(resultFile)
	if err := json.Unmarshal(data, &res); err != nil {
		t.Fatal(err)
	}
	want := []contract.File{{Path: "out.txt", Mode: store.ModeFile, SHA256: execSHA("context data\n"), Size: 13}}
	if res.Status != contract.Succeeded || !cmp.Equal(want, res.Outputs) {
		t.Errorf("result %s %s outputs %s", res.Status, res.Error, cmp.Diff(want, res.Outputs))
	}
	// With --cache the result is in the run cache too.
	if cached, err := runner.LoadResult(context.Background(), f.st, f.contract.RunID); err != nil || cached.Status != contract.Succeeded {
		t.Errorf("run cache: %v", err)
	}
	// The termination message names the full result, a blob of the store.
	var sum summary
	raw, _ := os.ReadFile(msgFile)
	if err := json.Unmarshal(raw, &sum); err != nil {
		t.Fatal(err)
	}
	if sum.Status != contract.Succeeded || sum.ResultSHA256 != execSHA(string(data[:len(data)-1])) {
		t.Errorf("termination message %s", raw)
	}
	if ok, _ := f.st.Has(context.Background(), sum.ResultSHA256); !ok {
		t.Errorf("result blob %s not in the store", sum.ResultSHA256)
	}
}

func TestExecCopySelf(t *testing.T) {
	f := newExecFixture(t, `true`)
	dst := filepath.Join(t.TempDir(), "bin", "expsync")
	o := &execOptions{ContractFile: f.file, VerifyInputsOnly: true, WorkDir: filepath.Join(t.TempDir(), "w"),
		TerminationMessage: filepath.Join(t.TempDir(), "msg"), CopySelfTo: dst}
	if err := o.Exec(context.Background(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	self, _ := os.Executable()
	want, _ := os.ReadFile(self)
	got, err := os.ReadFile(dst)
	if err != nil || !bytes.Equal(got, want) {
		t.Errorf("copied binary differs from the running one (%v)", err)
	}
	if fi, _ := os.Stat(dst); fi.Mode().Perm() != 0o755 {
		t.Errorf("copied binary mode %v", fi.Mode())
	}
}

// TestExecExitCodes pins what the Job's podFailurePolicy reads.
func TestExecExitCodes(t *testing.T) {
	for _, tc := range []struct {
		name, script string
		timeout      time.Duration
		want         int
	}{
		{"command's own code", `exit 3`, 0, 3},
		{"reserved infrastructure code becomes 1", `exit 222`, 0, 1},
		{"killed by a signal", `kill -USR1 $$`, 0, 128 + int(syscall.SIGUSR1)},
		{"exit 0 but no output", `true`, 0, 1},
		{"timed out", `sleep 30`, 200 * time.Millisecond, 124},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newExecFixture(t, tc.script)
			f.contract.Limits.Timeout = contract.Duration{Duration: tc.timeout}
			data, _ := json.Marshal(f.contract)
			os.WriteFile(f.file, data, 0o644)
			err := (&execOptions{ContractFile: f.file, WorkRoot: t.TempDir()}).Exec(context.Background(), &bytes.Buffer{})
			var ee *exitError
			if !errors.As(err, &ee) || ee.code != tc.want {
				t.Errorf("Exec = %v, want exit %d", err, tc.want)
			}
		})
	}
}

func TestExecFailedRunExitsWithTheCommandsCode(t *testing.T) {
	f := newExecFixture(t, `exit 3`)
	var out bytes.Buffer
	err := (&execOptions{ContractFile: f.file, WorkRoot: t.TempDir()}).Exec(context.Background(), &out)
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 3 || !strings.Contains(err.Error(), "Failed") {
		t.Errorf("Exec = %v, want the command's exit code 3 and the status", err)
	}
	var res contract.Result
	if json.Unmarshal(out.Bytes(), &res) != nil || res.ExitCode != 3 {
		t.Errorf("result on stdout: %s", out.String())
	}
}

func TestExecBadContractIsUsageError(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "c.json")
	os.WriteFile(bad, []byte(`{"version":"other"}`), 0o644)
	for _, file := range []string{bad, filepath.Join(t.TempDir(), "missing.json")} {
		err := (&execOptions{ContractFile: file}).Exec(context.Background(), &bytes.Buffer{})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 2 {
			t.Errorf("Exec(%s) = %v, want exit 2", file, err)
		}
	}
}

func TestExecVerifyInputsOnly(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("served\n"))
	}))
	defer srv.Close()

	t.Run("verified", func(t *testing.T) {
		in := contract.Input{Name: "d", Path: "in/d.txt", SHA256: execSHA("served\n"), URI: srv.URL + "/d"}
		f := newExecFixture(t, `true`, in)
		work, msg := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "termination-log")
		o := &execOptions{ContractFile: f.file, VerifyInputsOnly: true, WorkDir: work, TerminationMessage: msg}
		if err := o.Exec(context.Background(), &bytes.Buffer{}); err != nil {
			t.Fatal(err)
		}
		var v verification
		data, _ := os.ReadFile(msg)
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		contractFile, _ := os.ReadFile(f.file)
		want := verification{RunID: f.contract.RunID, ContractSHA256: execSHA(string(contractFile)), Verified: true,
			ContextTree: f.contract.Context.Tree, Inputs: []verifiedFile{{Name: "d", SHA256: execSHA("served\n")}}}
		if diff := cmp.Diff(want, v); diff != "" {
			t.Errorf("termination message (-want +got):\n%s", diff)
		}
		for p, content := range map[string]string{"data.txt": "context data\n", "in/d.txt": "served\n"} {
			if got, _ := os.ReadFile(filepath.Join(work, p)); string(got) != content {
				t.Errorf("%s = %q", p, got)
			}
		}
	})
	t.Run("mismatch", func(t *testing.T) {
		want := execSHA("expected\n")
		in := contract.Input{Name: "d", Path: "d.txt", SHA256: want, URI: srv.URL + "/d"}
		f := newExecFixture(t, `true`, in)
		msg := filepath.Join(t.TempDir(), "termination-log")
		o := &execOptions{ContractFile: f.file, VerifyInputsOnly: true, WorkDir: filepath.Join(t.TempDir(), "w"), TerminationMessage: msg}
		err := o.Exec(context.Background(), &bytes.Buffer{})
		var ee *exitError
		if !errors.As(err, &ee) || ee.code != 65 {
			t.Fatalf("Exec = %v, want exit 65 (the Job fails at once)", err)
		}
		var v verification
		data, _ := os.ReadFile(msg)
		if err := json.Unmarshal(data, &v); err != nil {
			t.Fatal(err)
		}
		if v.Verified || v.Mismatch == nil || v.Mismatch.Want != want || v.Mismatch.Got != execSHA("served\n") || !strings.Contains(v.Mismatch.Input, `input "d"`) {
			t.Errorf("termination message %s", data)
		}
		if len(data) > maxTerminationMessage {
			t.Errorf("termination message has %d bytes, Kubernetes keeps %d", len(data), maxTerminationMessage)
		}
	})
	t.Run("store object changed behind the store's back", func(t *testing.T) {
		f := newExecFixture(t, `true`)
		obj := f.st.ObjectPath(execSHA("context data\n"))
		os.Chmod(obj, 0o644)
		os.WriteFile(obj, []byte("tampered\n"), 0o644)
		msg := filepath.Join(t.TempDir(), "termination-log")
		o := &execOptions{ContractFile: f.file, VerifyInputsOnly: true, WorkDir: filepath.Join(t.TempDir(), "w"), TerminationMessage: msg}
		var ee *exitError
		if err := o.Exec(context.Background(), &bytes.Buffer{}); !errors.As(err, &ee) || ee.code != 65 {
			t.Fatalf("a changed store object: Exec = %v, want exit 65", err)
		}
		data, _ := os.ReadFile(msg)
		if !strings.Contains(string(data), execSHA("tampered\n")) || !strings.Contains(string(data), "context file data.txt") {
			t.Errorf("termination message %s", data)
		}
	})
}

// TestExecBinarySIGTERM: deleting a pod sends SIGTERM to `expsync exec`;
// the run is recorded as cancelled and leaves no process behind.
func TestExecBinarySIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test builds the expsync binary and runs it; run without -short")
	}
	pidFile := filepath.Join(t.TempDir(), "child.pid")
	f := newExecFixture(t, `sleep 300 & echo $! > "$P"; wait`)
	f.contract.Env = []contract.EnvVar{{Name: "P", Value: pidFile}}
	data, _ := json.Marshal(f.contract)
	os.WriteFile(f.file, data, 0o644)
	resultFile := filepath.Join(t.TempDir(), "result.json")
	cmd := exec.Command(expsyncBinary(t), "exec", "--contract", f.file, "--result", resultFile, "--work-root", t.TempDir())
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var pid int
	for range 1000 {
		if b, err := os.ReadFile(pidFile); err == nil && len(b) > 1 {
			fmt.Sscan(string(b), &pid)
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if pid == 0 {
		cmd.Process.Kill()
		t.Fatalf("the run never started: %s", stderr.String())
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 143 {
		t.Errorf("expsync exec after SIGTERM: %v, want exit 143 (stderr %s)", err, stderr.String())
	}
	var res contract.Result
	raw, _ := os.ReadFile(resultFile)
	if json.Unmarshal(raw, &res) != nil || res.Status != contract.Cancelled {
		t.Errorf("result %s", raw)
	}
	for range 200 {
		if syscall.Kill(pid, 0) != nil {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	syscall.Kill(pid, syscall.SIGKILL)
	t.Errorf("the run's child %d outlived expsync exec", pid)
}

// In a pod the secret arrives as the variable itself (render's
// secretKeyRef); the runner passes it to the command and redacts it.
func TestExecSecretFromPodVariable(t *testing.T) {
	const secret = "pod-secret-5e1a"
	t.Setenv("API_TOKEN", secret)
	f := newExecFixture(t, `echo "got $API_TOKEN"; echo done > out.txt`)
	f.contract.Env = []contract.EnvVar{{Name: "API_TOKEN", SecretRef: &contract.SecretRef{Name: "lab", Key: "api"}}}
	data, _ := json.Marshal(f.contract)
	os.WriteFile(f.file, data, 0o644)
	var out bytes.Buffer
	if err := (&execOptions{ContractFile: f.file, WorkRoot: t.TempDir()}).Exec(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out.String(), secret) || !strings.Contains(out.String(), "got [REDACTED]") {
		t.Errorf("result %s", out.String())
	}
}

// The pod's main container can run in the folder its init container
// verified, instead of materialising the context again.
func TestExecInPreparedFolder(t *testing.T) {
	f := newExecFixture(t, `cat data.txt extra.txt > out.txt`)
	work := filepath.Join(t.TempDir(), "context")
	prep := &execOptions{ContractFile: f.file, VerifyInputsOnly: true, WorkDir: work, TerminationMessage: filepath.Join(t.TempDir(), "m")}
	if err := prep.Exec(context.Background(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	// Proof that the run uses this very folder.
	os.WriteFile(filepath.Join(work, "extra.txt"), []byte("from the prepared folder\n"), 0o644)
	var out bytes.Buffer
	if err := (&execOptions{ContractFile: f.file, PreparedDir: work, WorkRoot: t.TempDir()}).Exec(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	var res contract.Result
	json.Unmarshal(out.Bytes(), &res)
	if len(res.Outputs) != 1 || res.Outputs[0].SHA256 != execSHA("context data\nfrom the prepared folder\n") {
		t.Errorf("outputs %+v", res.Outputs)
	}
}

func TestExecVerifyInputsTwiceStartsOver(t *testing.T) {
	f := newExecFixture(t, `true`)
	work := filepath.Join(t.TempDir(), "context")
	for i := range 2 {
		if i == 1 {
			os.WriteFile(filepath.Join(work, "leftover"), []byte("x"), 0o644)
		}
		o := &execOptions{ContractFile: f.file, VerifyInputsOnly: true, WorkDir: work, TerminationMessage: filepath.Join(t.TempDir(), "m")}
		if err := o.Exec(context.Background(), &bytes.Buffer{}); err != nil {
			t.Fatalf("run %d: %v", i, err)
		}
	}
	entries, _ := os.ReadDir(work)
	if len(entries) != 1 || entries[0].Name() != "data.txt" {
		t.Errorf("work folder after a second verification: %v", entries)
	}
}

// TestExecRunStore plays a pod's two containers with a store claim: prepare
// reads the shared store and writes only what it fetches to the run's own
// store (--run-store); the run container stores outputs, log and result in
// the run's store alone. The shared store is left exactly as it was.
func TestExecRunStore(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("served\n"))
	}))
	defer srv.Close()
	in := contract.Input{Name: "d", Path: "in/d.txt", SHA256: execSHA("served\n"), URI: srv.URL + "/d"}
	f := newExecFixture(t, `cat data.txt in/d.txt > out.txt`, in)
	shared := listFiles(t, f.st.Root())
	own := t.TempDir()
	work, msg := filepath.Join(t.TempDir(), "work"), filepath.Join(t.TempDir(), "prepare-log")
	prepare := &execOptions{ContractFile: f.file, Store: f.st.Root(), RunStore: own, VerifyInputsOnly: true, WorkDir: work, TerminationMessage: msg}
	if err := prepare.Exec(context.Background(), &bytes.Buffer{}); err != nil {
		t.Fatal(err)
	}
	runStore, err := store.OpenLocal(own)
	if err != nil {
		t.Fatal(err)
	}
	if ok, _ := runStore.Has(context.Background(), in.SHA256); !ok {
		t.Errorf("the fetched input is not in the run's store")
	}
	run := &execOptions{ContractFile: f.file, Store: own, PreparedDir: work, WorkRoot: t.TempDir(), TerminationMessage: filepath.Join(t.TempDir(), "run-log")}
	var out bytes.Buffer
	if err := run.Exec(context.Background(), &out); err != nil {
		t.Fatal(err)
	}
	var res contract.Result
	if err := json.Unmarshal(out.Bytes(), &res); err != nil || len(res.Outputs) != 1 || res.Outputs[0].SHA256 != execSHA("context data\nserved\n") {
		t.Fatalf("result %s (%v)", out.String(), err)
	}
	for _, sha := range []string{res.Outputs[0].SHA256, res.LogSHA256} {
		if ok, _ := runStore.Has(context.Background(), sha); !ok {
			t.Errorf("object %s is not in the run's store", sha)
		}
	}
	if diff := cmp.Diff(shared, listFiles(t, f.st.Root())); diff != "" {
		t.Errorf("the shared store changed (-before +after):\n%s", diff)
	}
}

// listFiles lists the files under root with their sizes.
func listFiles(t *testing.T, root string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out[rel] = fi.Size()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}
