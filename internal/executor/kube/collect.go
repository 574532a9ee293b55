package kube

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
	"github.com/expsync/expsync/tree"
)

// What collect trusts, and why (DESIGN.md, Trust):
//
//   - The Job's conditions and the pod status are written by the Job
//     controller and the kubelet: the exit code, the image digest that ran
//     and the container timings come from there, and win over anything the
//     pod says about itself.
//   - The init container's termination message is trusted: it runs the
//     runner image before any code under test, and no other container can
//     write it. It names the run, the contract (by digest) and the inputs it
//     verified.
//   - Everything the run container wrote is untrusted: its termination
//     message and the result it points to only tell collect where to look.
//     Every output, the log and the metrics file are rehashed while they are
//     copied out of the run's prefix; usage, metrics and the log are marked
//     self-reported.

// Limits on what collect reads from a prefix.
const (
	maxResultBytes  = 4 << 20
	maxMetricsBytes = 1 << 20
	// defaultMaxLogBytes and defaultMaxOutputBytes apply when the contract
	// sets none (the runner's defaults).
	defaultMaxLogBytes    = 64 << 20
	defaultMaxOutputBytes = 10 << 30
)

// verification is the init container's termination message (expsync exec
// --verify-inputs-only).
type verification struct {
	RunID          string `json:"runID"`
	ContractSHA256 string `json:"contractSHA256"`
	Verified       bool   `json:"verified"`
	ContextTree    string `json:"contextTree"`
	Inputs         []struct {
		Name   string `json:"name"`
		SHA256 string `json:"sha256"`
	} `json:"inputs"`
	Mismatch *struct {
		Input, Want, Got string
	} `json:"mismatch"`
	Error string `json:"error"`
}

// summary is the run container's termination message: a pointer to the
// result in the prefix, nothing more is taken from it.
type summary struct {
	RunID        string `json:"runID"`
	ResultSHA256 string `json:"resultSHA256"`
}

// collector builds one run's result from its finished Job.
type collector struct {
	ctx     context.Context
	storage Storage
	run     render.Run
	objs    render.JobObjects
	job     *batchv1.Job
	pods    []corev1.Pod
	// runnerImage is the image prepare must have run.
	runnerImage string
	// podsSettled says the cache had time to show the pod that ended the
	// Job: without it, a missing pod is errPodNotSeen, not gone.
	podsSettled bool
}

// errPodNotSeen: the Job's end reached the cache before its pod's did (two
// informers, no order between them); collect again after the pod's event.
var errPodNotSeen = errors.New("the pod that ended the Job is not in the cache yet")

// errInfrastructure marks a failure to read or copy what the pod left
// (the volume unreachable): collecting is tried again, the Job is kept.
type errInfrastructure struct{ err error }

func (e *errInfrastructure) Error() string { return e.err.Error() }
func (e *errInfrastructure) Unwrap() error { return e.err }

// collect returns the run's result. An error means nothing could be
// decided (the store claim unreadable): the Job stays and collect runs
// again later.
func (c *collector) collect() (*contract.Result, error) {
	_, failed := finished(c.job)
	res := &contract.Result{
		RunID: c.run.ID, ExitCode: -1, QueuedAt: c.job.CreationTimestamp.UTC(),
		Attempts:         max(1, int(c.job.Status.Succeeded+c.job.Status.Failed)),
		Requests:         contract.Requests{CPU: c.run.Contract.Limits.CPU, Memory: c.run.Contract.Limits.Memory},
		SchedulingDigest: c.run.Contract.SchedulingDigest(),
	}
	pod := c.decisivePod(failed)
	if !c.podsSettled && (pod == nil || stillRunning(c.pods)) {
		// The Job controller ends a Job once all its pods ended: a pod
		// the cache still shows running is a pod event still to come.
		return nil, errPodNotSeen
	}
	if pod == nil {
		return c.withoutPod(res, failed), nil
	}
	if failed && pod.DeletionTimestamp != nil && !disrupted(pod) {
		// Deleted through the API (not evicted: that is a disruption the
		// Job retries): the kubelet stopped it, so its exit code says
		// nothing about the run. Errored, not Cancelled: the engine holds
		// the run and tries it again (a Cancelled run of an unchanged
		// commit would wait for the next commit, its object Ready without
		// its result).
		res.StartedAt, res.FinishedAt = pod.CreationTimestamp.UTC(), endedAt(pod).UTC()
		return c.errored(res, "its pod %s was deleted before the run ended; it runs again", pod.Name), nil
	}
	// Until a container's own times say better: the pod's life.
	res.StartedAt, res.FinishedAt = pod.CreationTimestamp.UTC(), endedAt(pod).UTC()
	// prepare: the inputs.
	prep := containerStatus(pod.Status.InitContainerStatuses, render.InitContainerName)
	if ok := c.checkPrepare(res, prep); !ok {
		return res, nil
	}
	// run: the command.
	st := containerStatus(pod.Status.ContainerStatuses, render.MainContainerName)
	if st == nil || st.State.Terminated == nil {
		return c.errored(res, "the run container of pod %s never ended (%s)", pod.Name, describeState(st)), nil
	}
	term := st.State.Terminated
	res.ExitCode = int(term.ExitCode)
	res.StartedAt, res.FinishedAt = term.StartedAt.UTC(), term.FinishedAt.UTC()
	if want, got := digestOf(c.run.Contract.Image), digestOf(st.ImageID); want == "" || got != want {
		res.Status = contract.Failed
		res.Error = fmt.Sprintf("the node ran image %q, not the digest the experiment pins (%s): the result of another image is not this run's", st.ImageID, c.run.Contract.Image)
		return res, nil
	}
	reported, why := c.reportedResult(term.Message)
	if err := c.decide(res, term, reported, why); err != nil {
		return nil, err
	}
	return res, nil
}

// decisivePod is the pod whose outcome ended the Job: the succeeded one, or
// the failed one that ended last.
func (c *collector) decisivePod(failed bool) *corev1.Pod {
	want := corev1.PodSucceeded
	if failed {
		want = corev1.PodFailed
	}
	var best *corev1.Pod
	var bestAt time.Time
	for i := range c.pods {
		p := &c.pods[i]
		if p.Status.Phase != want || p.Labels[batchv1.ControllerUidLabel] != string(c.job.UID) {
			continue
		}
		at := endedAt(p)
		if best == nil || at.After(bestAt) || (at.Equal(bestAt) && p.Name > best.Name) {
			best, bestAt = p, at
		}
	}
	return best
}

func stillRunning(pods []corev1.Pod) bool {
	for i := range pods {
		if !terminal(&pods[i]) {
			return true
		}
	}
	return false
}

func terminal(p *corev1.Pod) bool {
	return p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed
}

// disrupted reports a pod the Job's podFailurePolicy ignores (evicted,
// preempted, its node gone).
func disrupted(p *corev1.Pod) bool {
	for _, c := range p.Status.Conditions {
		if c.Type == corev1.DisruptionTarget && c.Status == corev1.ConditionTrue {
			return true
		}
	}
	return false
}

// endedAt is when the last container of a pod ended (its creation when
// none did).
func endedAt(p *corev1.Pod) time.Time {
	at := p.CreationTimestamp.Time
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if t := s.State.Terminated; t != nil && t.FinishedAt.After(at) {
				at = t.FinishedAt.Time
			}
		}
	}
	return at
}

// withoutPod decides a run whose Job ended with no pod to read: pods that
// never started before the deadline, or pods deleted behind the Job's back.
// Nothing the code under test did can be checked, so it is never a result
// that stands for the run.
func (c *collector) withoutPod(res *contract.Result, failed bool) *contract.Result {
	res.StartedAt, res.FinishedAt = res.QueuedAt, time.Now().UTC()
	if failed {
		reason, msg := jobFailure(c.job)
		if reason == batchv1.JobReasonDeadlineExceeded {
			return c.errored(res, "its Job failed (%s: %s) with no pod left to show what ran", reason, msg)
		}
		// Its pods were deleted (by a person, the namespace's deletion):
		// the run was stopped, not failed; it is tried again.
		return c.errored(res, "its pod was deleted before the run ended (%s: %s); it runs again", reason, shorten(msg, 512))
	}
	return c.errored(res, "its Job completed but the pod that completed it is gone, so its exit code and image cannot be checked")
}

func (c *collector) errored(res *contract.Result, format string, args ...any) *contract.Result {
	res.Status = contract.Errored
	res.Error = fmt.Sprintf(format, args...)
	return res
}

// checkPrepare reads the init container's verdict; false means res is
// decided (the inputs did not verify, or prepare's report cannot be
// trusted).
func (c *collector) checkPrepare(res *contract.Result, st *corev1.ContainerStatus) bool {
	if st == nil || st.State.Terminated == nil {
		c.errored(res, "its init container never ended (%s)", describeState(st))
		return false
	}
	term := st.State.Terminated
	if want := digestOf(c.runnerImage); want != "" && digestOf(st.ImageID) != want {
		c.errored(res, "the init container ran image %q, not the runner image %s: its input verification does not count", st.ImageID, c.runnerImage)
		return false
	}
	var v verification
	if err := json.Unmarshal([]byte(term.Message), &v); err != nil {
		c.errored(res, "the init container exited %d without its report (%s)", term.ExitCode, shorten(term.Message, 200))
		return false
	}
	if v.RunID != c.run.ID || v.ContractSHA256 != c.objs.ContractSHA256 {
		// Someone changed the Job (a suspended Job's template is mutable)
		// or its pod: what ran is not what was planned.
		c.errored(res, "the pod verified the contract %s of run %s, not the contract %s planned for run %s: the Job was changed after it was created",
			v.ContractSHA256, v.RunID, c.objs.ContractSHA256, c.run.ID)
		return false
	}
	switch {
	case term.ExitCode == contract.ExitInputMismatch && v.Mismatch != nil:
		res.Status, res.StartedAt, res.FinishedAt = contract.InputMismatch, term.StartedAt.UTC(), term.FinishedAt.UTC()
		res.Error = fmt.Sprintf("%s: expected sha256 %s, got %s; the command was not started", v.Mismatch.Input, v.Mismatch.Want, v.Mismatch.Got)
		return false
	case term.ExitCode != 0:
		c.errored(res, "its init container failed (exit code %d): %s", term.ExitCode, shorten(v.Error, 1024))
		return false
	case !v.Verified || v.ContextTree != c.run.Contract.Context.Tree || !sameInputs(v, c.run):
		c.errored(res, "its init container exited 0 but its report does not verify the run's context and inputs")
		return false
	}
	return true
}

func sameInputs(v verification, run render.Run) bool {
	if len(v.Inputs) == 0 && len(run.Contract.Inputs) > 0 {
		// A report too long for a termination message drops the list; the
		// exit code and the contract's digest still vouch for them.
		return true
	}
	if len(v.Inputs) != len(run.Contract.Inputs) {
		return false
	}
	for i, in := range run.Contract.Inputs {
		if v.Inputs[i].Name != in.Name || v.Inputs[i].SHA256 != in.SHA256 {
			return false
		}
	}
	return true
}

// reportedResult reads the result the run container points to: the
// pointer and the result are untrusted, so it must name this run and hash
// to its name. why says why there is none.
func (c *collector) reportedResult(message string) (*contract.Result, string) {
	var s summary
	if err := json.Unmarshal([]byte(message), &s); err != nil {
		return nil, "its termination message is not a result summary"
	}
	if s.RunID != c.run.ID || !store.ValidSHA256(s.ResultSHA256) {
		return nil, "its termination message names another run or no result"
	}
	rc, err := c.storage.OpenPrefixObject(c.ctx, c.run.ID, s.ResultSHA256, maxResultBytes)
	if err != nil {
		return nil, "its result cannot be read: " + err.Error()
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, "its result cannot be read: " + err.Error()
	}
	if sum := sha256.Sum256(data); hex.EncodeToString(sum[:]) != s.ResultSHA256 {
		return nil, "its result does not hash to the name its pod gave it"
	}
	var r contract.Result
	dec := json.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&r); err != nil || r.RunID != c.run.ID {
		return nil, "its result is not a result of this run"
	}
	return &r, ""
}

// decide sets the status from the exit code the kubelet saw, then copies
// and checks what the pod reported.
func (c *collector) decide(res *contract.Result, term *corev1.ContainerStateTerminated, reported *contract.Result, why string) error {
	code := term.ExitCode
	jobReason, _ := jobFailure(c.job)
	switch {
	case code == 0:
		res.Status = contract.Succeeded
	case code == int32(contract.ExitTimedOut) || jobReason == batchv1.JobReasonDeadlineExceeded:
		res.Status = contract.TimedOut
		res.Error = "the run exceeded its timeout"
		if jobReason == batchv1.JobReasonDeadlineExceeded {
			res.Error = "the Job's deadline passed before the run ended"
		}
	case code == contract.ExitInfrastructure:
		res.Status = contract.Errored
		res.Error = "the runner in the pod could not finish (exit code 222)"
	case code == contract.ExitInputMismatch:
		res.Status = contract.InputMismatch
		res.Error = "an input did not match its digest (exit code 65)"
	case term.Reason == "OOMKilled":
		res.Status, res.Signal, res.SignalNumber = contract.Failed, "killed", 9
		res.Error = fmt.Sprintf("killed for exceeding its memory limit (%s)", c.run.Contract.Limits.Memory)
	default:
		res.Status = contract.Failed
		res.Error = fmt.Sprintf("exit code %d", code)
	}
	if reported == nil {
		if res.Status == contract.Succeeded {
			res.Status = contract.Failed
			res.Error = "its container exited 0 but " + why
		} else if res.Status == contract.Failed {
			res.Error += "; " + why
		}
		return nil
	}
	if reported.Error != "" && res.Status != contract.Succeeded && reported.ExitCode == int(code) {
		// The pod's own words, for the researcher; the verdict is the
		// exit code's.
		res.Error = shorten(reported.Error, 1024)
	}
	if reported.Status == contract.Succeeded != (res.Status == contract.Succeeded) || (code != 0 && reported.ExitCode != int(code) && reported.ExitCode >= 0) {
		note := fmt.Sprintf("the pod reported %s with exit code %d, its container exited %d: the container's exit code stands", reported.Status, reported.ExitCode, code)
		if res.Status == contract.Succeeded {
			res.Status = contract.Failed
			res.Error = note
		} else {
			res.Error += " (" + note + ")"
		}
	}
	c.selfReported(res, reported, term)
	return c.importFiles(res, reported)
}

// selfReported copies what only the pod can know, marked as such.
func (c *collector) selfReported(res, reported *contract.Result, term *corev1.ContainerStateTerminated) {
	res.Usage = reported.Usage
	res.Usage.SelfReported = true
	res.SelfReported = []string{contract.SelfReportedLog, contract.SelfReportedMetrics, contract.SelfReportedUsage}
	res.Metrics, res.MetricsError = reported.Metrics, reported.MetricsError
	res.LogTruncated, res.LogTail = reported.LogTruncated, reported.LogTail
	res.Withheld = reported.Withheld
	// The pod's clock is finer than the kubelet's seconds: kept when it
	// agrees with them.
	lo, hi := term.StartedAt.Add(-time.Second), term.FinishedAt.Add(time.Second)
	if !reported.StartedAt.Before(lo) && !reported.FinishedAt.After(hi) && !reported.FinishedAt.Before(reported.StartedAt) &&
		!reported.StartedAt.IsZero() {
		res.StartedAt, res.FinishedAt = reported.StartedAt.UTC(), reported.FinishedAt.UTC()
	}
}

// importFiles copies the outputs, the log and the metrics file the pod
// reported from its prefix into the controller's store, rehashing each.
// An output that is not the run's to declare, or whose bytes do not match,
// fails the run.
func (c *collector) importFiles(res, reported *contract.Result) error {
	limits := c.run.Contract.Limits
	logLimit, outLimit := orDefault(limits.MaxLogBytes, defaultMaxLogBytes), orDefault(limits.MaxOutputBytes, defaultMaxOutputBytes)
	var problems []string
	if reported.LogSHA256 != "" {
		obj, err := c.storage.Import(c.ctx, c.run.ID, reported.LogSHA256, logLimit+4<<10)
		if err := infrastructure(err); err != nil {
			return err
		}
		if err != nil {
			problems = append(problems, "its log: "+err.Error())
		} else {
			res.LogSHA256, res.LogSize = obj.SHA256, obj.Size
		}
	}
	if reported.MetricsSHA256 != "" {
		obj, err := c.storage.Import(c.ctx, c.run.ID, reported.MetricsSHA256, maxMetricsBytes)
		if err := infrastructure(err); err != nil {
			return err
		}
		if err == nil {
			res.MetricsSHA256 = obj.SHA256
		} else {
			res.Metrics, res.MetricsError = nil, "the metrics file its pod reported cannot be used: "+err.Error()
		}
	}
	if why := overOutputLimits(reported.Outputs, c.run.Contract.Limits); why != "" {
		// The runner in the pod refuses such a run; a pod that reports it
		// anyway gets none of its outputs recorded.
		problems = append(problems, why)
		reported.Outputs = nil
	}
	remaining := outLimit
	for _, o := range reported.Outputs {
		if why := c.badOutput(o); why != "" {
			problems = append(problems, why)
			continue
		}
		obj, err := c.storage.Import(c.ctx, c.run.ID, o.SHA256, min(remaining, max(o.Size, 0)))
		if err := infrastructure(err); err != nil {
			return err
		}
		if err != nil || obj.Size != o.Size {
			problems = append(problems, fmt.Sprintf("output %s does not match what its pod reported (sha256 %s, %d bytes): %v", o.Path, o.SHA256, o.Size, err))
			continue
		}
		remaining -= obj.Size
		res.Outputs = append(res.Outputs, o)
	}
	if res.Status == contract.Succeeded {
		for _, decl := range c.run.Contract.Outputs {
			if !strings.HasSuffix(decl, "/") && !slices.ContainsFunc(res.Outputs, func(e contract.File) bool { return e.Path == decl }) {
				problems = append(problems, "declared output "+decl+" is not among the outputs its pod reported")
			}
		}
	}
	if len(problems) > 0 {
		msg := strings.Join(problems, "; ")
		if res.Status == contract.Succeeded {
			res.Status, res.Error = contract.Failed, msg
		} else {
			res.Error += "; " + msg
		}
		res.Error = shorten(res.Error, 2048)
	}
	return nil
}

// badOutput says why a reported output is not one the run may have: a path
// outside what it declares, or a malformed entry.
func (c *collector) badOutput(o contract.File) string {
	clean, err := tree.Clean(o.Path)
	if err != nil || clean != o.Path || clean == "" {
		return fmt.Sprintf("output path %q is not a clean relative path", o.Path)
	}
	if !store.ValidSHA256(o.SHA256) || o.Size < 0 {
		return fmt.Sprintf("output %s has no valid digest and size", o.Path)
	}
	switch o.Mode {
	case store.ModeFile, store.ModeExecutable, store.ModeSymlink:
	default:
		return fmt.Sprintf("output %s has mode %q", o.Path, o.Mode)
	}
	if why := runner.UncommittableName(o.Path); why != "" {
		// Git's path rules for every platform: recorded, it would break
		// every later checkout of the branch (issue 9). The runner in the
		// pod leaves such files out, as the local runner does.
		return fmt.Sprintf("output file %q is left out: %s; rename it", shorten(o.Path, 200), why)
	}
	for _, decl := range c.run.Contract.Outputs {
		if o.Path == decl || (strings.HasSuffix(decl, "/") && strings.HasPrefix(o.Path, decl)) {
			return ""
		}
	}
	return fmt.Sprintf("output %s is not under any declared output", o.Path)
}

// overOutputLimits says why a pod's outputs are more than a run may have
// ("" when they are not): the output files limit (the repository's
// limits.maxOutputFiles within contract.MaxOutputFiles) and the bytes of
// their names in all. run.json and the attestation list every output, and
// what expsync writes it must read back (contract/limits.go).
func overOutputLimits(outputs []contract.File, limits contract.Limits) string {
	if n := limits.OutputFiles(); len(outputs) > n {
		return fmt.Sprintf("outputs hold more than %d files, the limit for one run (limits.maxOutputFiles in expsync.yaml can lower it, up to %d); write fewer files or pack them into an archive",
			n, contract.MaxOutputFiles)
	}
	var names int
	for _, o := range outputs {
		if names += len(o.Path); names > contract.MaxOutputNameBytes {
			return fmt.Sprintf("the names of the output files exceed %d bytes in all, the limit for one run (run.json and the attestation list every output); write fewer files or pack them into an archive",
				contract.MaxOutputNameBytes)
		}
	}
	return ""
}

// infrastructure returns err unless it is the pod's doing (ErrBadObject):
// an error of the storage itself, after which collecting is tried again.
func infrastructure(err error) error {
	if err == nil || errors.Is(err, ErrBadObject) {
		return nil
	}
	return &errInfrastructure{err}
}

func orDefault(v, d int64) int64 {
	if v > 0 {
		return v
	}
	return d
}

func containerStatus(list []corev1.ContainerStatus, name string) *corev1.ContainerStatus {
	for i := range list {
		if list[i].Name == name {
			return &list[i]
		}
	}
	return nil
}

func describeState(st *corev1.ContainerStatus) string {
	switch {
	case st == nil:
		return "no status"
	case st.State.Waiting != nil:
		return "waiting: " + st.State.Waiting.Reason
	case st.State.Running != nil:
		return "still running"
	}
	return "no state"
}

// digestOf returns the "sha256:<hex>" an image reference or a container's
// imageID names ("" when it names none): "repo@sha256:...",
// "docker-pullable://repo@sha256:..." and a bare "sha256:..." alike.
func digestOf(ref string) string {
	if i := strings.LastIndex(ref, "@"); i >= 0 {
		ref = ref[i+1:]
	}
	hexPart, ok := strings.CutPrefix(ref, "sha256:")
	if !ok || !store.ValidSHA256(hexPart) {
		return ""
	}
	return ref
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
