package kube

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

const (
	testRunID   = "3f9c0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde"
	otherRunID  = "aaaa0a1b2c3d4e5f60718293a4b5c6d7e8f90112233445566778899aabbccdde"
	testImage   = "docker.io/library/python@sha256:78387bc3881b8273120a12ebe6c1ab22b018ccc2c9adf565ae1ac9b536e184ea"
	runnerImage = "ghcr.io/expsync/expsync@sha256:1111111111111111111111111111111111111111111111111111111111111111"
	contextTree = "4b825dc642cb6eb9a060e54bf8d69288fbee4904"
)

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// collectFixture is a finished Job with one pod, the run's prefix on a
// VolumeStorage, and builders to shape what the pod did.
type collectFixture struct {
	t       testing.TB
	storage *VolumeStorage
	run     render.Run
	objs    render.JobObjects
	job     *batchv1.Job
	pod     *corev1.Pod
	// reported is the result the run container stores in its prefix.
	reported *contract.Result
}

func newCollectFixture(t testing.TB) *collectFixture {
	t.Helper()
	st, err := NewVolumeStorage("store", t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	run := render.Run{ID: testRunID, Experiment: "pi", SpecPath: "pi.yaml",
		Spec: &v1alpha1.ExperimentSpec{Image: testImage, Command: []string{"python3"}},
		Contract: contract.Contract{Version: contract.Version, RunID: testRunID, Experiment: "pi", Image: testImage,
			Command: []string{"python3", "pi.py"}, Context: contract.Context{Tree: contextTree},
			Inputs:  []contract.Input{{Name: "data", Path: "data.csv", SHA256: hexSHA([]byte("data"))}},
			Outputs: []string{"out/pi.json", "out/plots/"}, Limits: contract.Limits{Memory: "1Gi"}}}
	objs, err := render.RenderJobObjects(run, render.JobOptions{RunnerImage: runnerImage, Namespace: "lab", StoreClaim: "store"})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.PreparePrefix(context.Background(), testRunID); err != nil {
		t.Fatal(err)
	}
	created := metav1.NewTime(time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC))
	job := objs.Job.DeepCopy()
	job.UID, job.CreationTimestamp = "job-uid", created
	job.Status = batchv1.JobStatus{Succeeded: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobComplete, Status: "True"}}}
	f := &collectFixture{t: t, storage: st, run: run, objs: objs, job: job}
	f.pod = &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: job.Name + "-x1", Namespace: "lab", CreationTimestamp: created,
			Labels: map[string]string{batchv1.ControllerUidLabel: "job-uid"}},
		Status: corev1.PodStatus{Phase: corev1.PodSucceeded},
	}
	f.prepare(0, f.verification(true))
	started := created.Add(10 * time.Second)
	f.reported = &contract.Result{RunID: testRunID, Status: contract.Succeeded, ExitCode: 0,
		StartedAt: started.Add(300 * time.Millisecond), FinishedAt: started.Add(2300 * time.Millisecond),
		Usage: contract.Usage{CPUSeconds: 1.5, MaxRSSBytes: 1 << 20}, Metrics: map[string]float64{"pi": 3.14}}
	f.output("out/pi.json", []byte(`{"pi":3.14}`))
	f.output("out/plots/a.svg", []byte("<svg/>"))
	f.reported.LogSHA256 = f.put([]byte("log\n"))
	f.reported.LogSize = 4
	f.reported.MetricsSHA256 = f.put([]byte(`{"pi":3.14}`))
	f.runContainer(0, "", testImage)
	return f
}

// put writes an object into the run's prefix as the pod's store does.
func (f *collectFixture) put(data []byte) string {
	sha := hexSHA(data)
	path := filepath.Join(f.storage.PrefixDir(testRunID), "sha256", sha[:2], sha)
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		f.t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o444); err != nil {
		f.t.Fatal(err)
	}
	return sha
}

func (f *collectFixture) output(path string, data []byte) {
	f.reported.Outputs = append(f.reported.Outputs, contract.File{Path: path, Mode: store.ModeFile, SHA256: f.put(data), Size: int64(len(data))})
}

func (f *collectFixture) verification(ok bool) string {
	v := map[string]any{"runID": testRunID, "contractSHA256": f.objs.ContractSHA256, "verified": ok, "contextTree": contextTree,
		"inputs": []map[string]string{{"name": "data", "sha256": hexSHA([]byte("data"))}}}
	b, _ := json.Marshal(v)
	return string(b)
}

func (f *collectFixture) prepare(code int32, message string) {
	f.pod.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: render.InitContainerName, ImageID: runnerImage,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Message: message,
			StartedAt: metav1.NewTime(f.job.CreationTimestamp.Add(time.Second)), FinishedAt: metav1.NewTime(f.job.CreationTimestamp.Add(5 * time.Second))}}}}
}

func (f *collectFixture) runContainer(code int32, reason, imageID string) {
	f.pod.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: render.MainContainerName, ImageID: imageID,
		State: corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: code, Reason: reason,
			StartedAt:  metav1.NewTime(f.job.CreationTimestamp.Add(10 * time.Second)),
			FinishedAt: metav1.NewTime(f.job.CreationTimestamp.Add(12 * time.Second))}}}}
}

// failJob makes the Job and its pod failed.
func (f *collectFixture) failJob(reason string) {
	f.job.Status = batchv1.JobStatus{Failed: 1, Conditions: []batchv1.JobCondition{{Type: batchv1.JobFailed, Status: "True", Reason: reason}}}
	f.pod.Status.Phase = corev1.PodFailed
}

// collect stores the reported result in the prefix, points the run
// container's termination message at it and collects.
func (f *collectFixture) collect() *contract.Result {
	f.t.Helper()
	if f.reported != nil {
		data, _ := contract.MarshalResult(f.reported)
		sha := f.put(data)
		st := &f.pod.Status.ContainerStatuses[0]
		if st.State.Terminated.Message == "" {
			msg, _ := json.Marshal(map[string]any{"runID": testRunID, "resultSHA256": sha, "status": f.reported.Status, "exitCode": f.reported.ExitCode})
			st.State.Terminated.Message = string(msg)
		}
	}
	var pods []corev1.Pod
	if f.pod != nil {
		pods = []corev1.Pod{*f.pod}
	}
	c := &collector{ctx: context.Background(), storage: f.storage, run: f.run, objs: f.objs, job: f.job, pods: pods, runnerImage: runnerImage, podsSettled: true}
	res, err := c.collect()
	if err != nil {
		f.t.Fatalf("collect: %v", err)
	}
	if res.RunID != testRunID {
		f.t.Errorf("result of run %s", res.RunID)
	}
	return res
}

func (f *collectFixture) inResults(sha string) bool {
	ok, _ := f.storage.results.Has(context.Background(), sha)
	return ok
}

func TestCollectSucceeded(t *testing.T) {
	f := newCollectFixture(t)
	res := f.collect()
	if res.Status != contract.Succeeded || res.ExitCode != 0 || res.Error != "" {
		t.Fatalf("status %s, exit %d, error %q", res.Status, res.ExitCode, res.Error)
	}
	if len(res.Outputs) != 2 || !f.inResults(res.Outputs[0].SHA256) || !f.inResults(res.Outputs[1].SHA256) {
		t.Errorf("outputs %+v not imported", res.Outputs)
	}
	if !f.inResults(res.LogSHA256) || !f.inResults(res.MetricsSHA256) {
		t.Errorf("log or metrics not imported")
	}
	if !res.Usage.SelfReported || res.Usage.CPUSeconds != 1.5 {
		t.Errorf("usage %+v, want the pod's figures marked self-reported", res.Usage)
	}
	if strings.Join(res.SelfReported, ",") != "log,metrics,usage" {
		t.Errorf("self-reported %v, want log, metrics and usage", res.SelfReported)
	}
	// The pod's finer clock is kept: it agrees with the kubelet's seconds.
	if !res.StartedAt.Equal(f.reported.StartedAt) || !res.FinishedAt.Equal(f.reported.FinishedAt) {
		t.Errorf("timings %s..%s", res.StartedAt, res.FinishedAt)
	}
	if !res.QueuedAt.Equal(f.job.CreationTimestamp.Time) || res.Attempts != 1 {
		t.Errorf("queued %s, attempts %d", res.QueuedAt, res.Attempts)
	}
}

// TestCollectDistrustsThePod: every way a pod can lie about itself, and
// what collect makes of it.
func TestCollectDistrustsThePod(t *testing.T) {
	tests := []struct {
		name   string
		change func(f *collectFixture)
		status contract.Status
		code   int
		reason string
	}{
		{"exit code the status contradicts", func(f *collectFixture) {
			f.runContainer(3, "Error", testImage)
			f.failJob("PodFailurePolicy")
		}, contract.Failed, 3, "its container exited 3"},
		{"result claiming failure for exit 0", func(f *collectFixture) {
			f.reported.Status, f.reported.ExitCode = contract.Failed, 1
		}, contract.Failed, 0, "the container's exit code stands"},
		{"another image digest ran", func(f *collectFixture) {
			f.runContainer(0, "", "docker.io/library/python@sha256:"+strings.Repeat("9", 64))
		}, contract.Failed, 0, "not the digest the experiment pins"},
		{"an image ID naming no digest", func(f *collectFixture) {
			f.runContainer(0, "", "docker.io/library/python:3.12")
		}, contract.Failed, 0, "not the digest the experiment pins"},
		{"an output whose bytes differ", func(f *collectFixture) {
			path := filepath.Join(f.storage.PrefixDir(testRunID), "sha256", f.reported.Outputs[0].SHA256[:2], f.reported.Outputs[0].SHA256)
			_ = os.Chmod(path, 0o644)
			if err := os.WriteFile(path, []byte(`{"pi":4}`), 0o644); err != nil {
				t.Fatal(err)
			}
		}, contract.Failed, 0, "out/pi.json does not match"},
		{"another run's output claimed without its bytes", func(f *collectFixture) {
			// The results store holds it (another run produced it); this
			// run's prefix does not.
			theirs := []byte("expensive result of another run")
			if _, err := f.storage.results.PutBytes(context.Background(), theirs); err != nil {
				t.Fatal(err)
			}
			f.reported.Outputs[0].SHA256, f.reported.Outputs[0].Size = hexSHA(theirs), int64(len(theirs))
		}, contract.Failed, 0, "is not in the prefix"},
		{"an output outside the declared ones", func(f *collectFixture) {
			f.output("../../etc/passwd", []byte("x"))
		}, contract.Failed, 0, "not a clean relative path"},
		// Issue 9, item 3: a name Git refuses on some platform would break
		// every later checkout of the branch; the runner in the pod leaves
		// such files out, but the pod's report is untrusted.
		{"an output named .git in another case", func(f *collectFixture) {
			f.output("out/plots/.GIT/config", []byte("[core]\n"))
		}, contract.Failed, 0, `output file "out/plots/.GIT/config" is left out`},
		{"an output with the NTFS short name of .git", func(f *collectFixture) {
			f.output("out/plots/git~1/hooks/post-checkout", []byte("#!/bin/sh\n"))
		}, contract.Failed, 0, "is left out"},
		{"an output with a trailing dot", func(f *collectFixture) {
			f.output("out/plots/b.svg.", []byte("<svg/>"))
		}, contract.Failed, 0, "is left out"},
		// Issue 9, item 4: what the reconciler and verify read back is
		// bounded; so is what a pod may report.
		{"more output files than the repository allows", func(f *collectFixture) {
			f.run.Contract.Limits.MaxOutputFiles = 1
		}, contract.Failed, 0, "outputs hold more than 1 files"},
		{"output names over the limit in all", func(f *collectFixture) {
			long := "out/plots/" + strings.Repeat("n", 3000)
			for i := 0; i*3000 <= contract.MaxOutputNameBytes; i++ {
				f.reported.Outputs = append(f.reported.Outputs, contract.File{Path: fmt.Sprintf("%s%04d", long, i), Mode: store.ModeFile,
					SHA256: f.reported.Outputs[0].SHA256, Size: f.reported.Outputs[0].Size})
			}
		}, contract.Failed, 0, "names of the output files exceed"},
		{"an undeclared output", func(f *collectFixture) {
			f.output("secret.txt", []byte("x"))
		}, contract.Failed, 0, "not under any declared output"},
		{"a symlink out of the prefix", func(f *collectFixture) {
			// The object the pod names is a link to the controller's own
			// copy of another run's output.
			theirs := []byte("another run's bytes")
			obj, _ := f.storage.results.PutBytes(context.Background(), theirs)
			link := filepath.Join(f.storage.PrefixDir(testRunID), "sha256", obj.SHA256[:2], obj.SHA256)
			_ = os.MkdirAll(filepath.Dir(link), 0o755)
			if err := os.Symlink(f.storage.results.ObjectPath(obj.SHA256), link); err != nil {
				t.Fatal(err)
			}
			f.reported.Outputs[0].SHA256, f.reported.Outputs[0].Size = obj.SHA256, obj.Size
		}, contract.Failed, 0, "out/pi.json does not match"},
		{"a FIFO where an output should be", func(f *collectFixture) {
			sha := strings.Repeat("f", 64)
			path := filepath.Join(f.storage.PrefixDir(testRunID), "sha256", sha[:2], sha)
			_ = os.MkdirAll(filepath.Dir(path), 0o755)
			if err := syscall.Mkfifo(path, 0o644); err != nil {
				t.Fatal(err)
			}
			f.reported.Outputs[0].SHA256 = sha
		}, contract.Failed, 0, "not a file"},
		{"an output larger than the limit", func(f *collectFixture) {
			f.run.Contract.Limits.MaxOutputBytes = 10
		}, contract.Failed, 0, "at most"},
		{"a result pointer that does not hash", func(f *collectFixture) {
			f.runContainer(0, "", testImage)
			msg, _ := json.Marshal(map[string]any{"runID": testRunID, "resultSHA256": f.put([]byte("x"))})
			f.pod.Status.ContainerStatuses[0].State.Terminated.Message = strings.Replace(string(msg), hexSHA([]byte("x")), strings.Repeat("0", 64), 1)
		}, contract.Failed, 0, "exited 0 but"},
		{"a termination message of another run", func(f *collectFixture) {
			msg, _ := json.Marshal(map[string]any{"runID": otherRunID, "resultSHA256": strings.Repeat("0", 64)})
			f.pod.Status.ContainerStatuses[0].State.Terminated.Message = string(msg)
		}, contract.Failed, 0, "names another run"},
		{"a declared output missing", func(f *collectFixture) {
			f.reported.Outputs = f.reported.Outputs[1:]
		}, contract.Failed, 0, "declared output out/pi.json"},
		{"killed for memory", func(f *collectFixture) {
			f.runContainer(137, "OOMKilled", testImage)
			f.failJob("PodFailurePolicy")
			f.reported = nil
		}, contract.Failed, 137, "memory limit (1Gi)"},
		{"the runner's infrastructure failure", func(f *collectFixture) {
			f.runContainer(222, "Error", testImage)
			f.failJob("BackoffLimitExceeded")
			f.reported = nil
		}, contract.Errored, 222, "could not finish"},
		{"the Job's deadline", func(f *collectFixture) {
			f.runContainer(143, "Error", testImage)
			f.failJob(batchv1.JobReasonDeadlineExceeded)
			f.reported = nil
		}, contract.TimedOut, 143, "deadline"},
		{"an input that does not match", func(f *collectFixture) {
			f.prepare(65, `{"runID":"`+testRunID+`","contractSHA256":"`+f.objs.ContractSHA256+`","mismatch":{"input":"input \"data\"","want":"a","got":"b"}}`)
			f.pod.Status.ContainerStatuses = nil
			f.failJob("PodFailurePolicy")
			f.reported = nil
		}, contract.InputMismatch, -1, `input "data": expected sha256 a, got b`},
		{"a contract changed after the Job was made", func(f *collectFixture) {
			f.prepare(0, strings.Replace(f.verification(true), f.objs.ContractSHA256, strings.Repeat("e", 64), 1))
		}, contract.Errored, -1, "the Job was changed after it was created"},
		{"prepare from another image", func(f *collectFixture) {
			f.pod.Status.InitContainerStatuses[0].ImageID = "ghcr.io/evil/runner@sha256:" + strings.Repeat("2", 64)
		}, contract.Errored, -1, "not the runner image"},
		{"prepare exiting 0 without verifying", func(f *collectFixture) {
			f.prepare(0, f.verification(false))
		}, contract.Errored, -1, "does not verify"},
		{"prepare unable to fetch", func(f *collectFixture) {
			f.prepare(222, `{"runID":"`+testRunID+`","contractSHA256":"`+f.objs.ContractSHA256+`","error":"GET https://x: 503"}`)
			f.pod.Status.ContainerStatuses = nil
			f.failJob("BackoffLimitExceeded")
			f.reported = nil
		}, contract.Errored, -1, "503"},
		{"no pod left", func(f *collectFixture) {
			f.failJob(batchv1.JobReasonDeadlineExceeded)
			f.pod = nil
			f.reported = nil
		}, contract.Errored, -1, "no pod left"},
		{"a failed Job whose pods were deleted", func(f *collectFixture) {
			f.failJob("PodFailurePolicy")
			f.pod = nil
			f.reported = nil
		}, contract.Errored, -1, "its pod was deleted"},
		{"a pod deleted through the API", func(f *collectFixture) {
			f.runContainer(143, "Error", testImage)
			f.failJob("PodFailurePolicy")
			now := metav1.Now()
			f.pod.DeletionTimestamp = &now
		}, contract.Errored, -1, "was deleted before the run ended"},
		{"a completed Job whose pod is gone", func(f *collectFixture) {
			f.pod = nil
			f.reported = nil
		}, contract.Errored, -1, "is gone"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newCollectFixture(t)
			tt.change(f)
			res := f.collect()
			if res.Status != tt.status || res.ExitCode != tt.code || !strings.Contains(res.Error, tt.reason) {
				t.Errorf("status %s, exit code %d, error %q; want %s, %d, %q", res.Status, res.ExitCode, res.Error, tt.status, tt.code, tt.reason)
			}
			for _, o := range res.Outputs {
				if why := runner.UncommittableName(o.Path); why != "" {
					t.Errorf("output %q was kept: %s", o.Path, why)
				}
				if o.Path == "out/pi.json" && (tt.name == "an output whose bytes differ" || strings.Contains(tt.name, "claimed") || strings.Contains(tt.name, "symlink")) {
					t.Errorf("a bad output was kept: %+v", o)
				}
			}
		})
	}
}
