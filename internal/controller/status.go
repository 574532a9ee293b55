package controller

import (
	"fmt"
	"sort"
	"strings"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"

	"github.com/expsync/expsync/api/v1alpha1"
)

// refView is what the controller knows of one watched ref at the end of a
// Reconcile: the engine's state of it, flattened for the status.
type refView struct {
	Ref string
	// Order is the index of the first spec.refs pattern the ref matches.
	Order int
	// Commit is the newest commit seen on the ref.
	Commit string
	// InFlight is an earlier commit whose runs are still in flight while
	// Commit waits for the ref's worker ("" when the counts are Commit's).
	InFlight string
	// Busy: a reconcile of Commit is running or waiting to run.
	Busy bool
	// Planned, ... count the runs of Commit (see v1alpha1.RunCounts).
	Planned, Succeeded, Failed, Running, Held int
	// Invalid holds the errors of experiment files that did not load
	// (file:line:col each), InvalidCount how many experiments.
	Invalid      string
	InvalidCount int
	// NotVerified says why Commit may not run.
	NotVerified string
	// PushErr is the last failed push of results ("" once one landed).
	PushErr string
	// SignErr says why a signing key cannot be used.
	SignErr string
	// HeldReason says why the held runs cannot run now (a quota that
	// refuses their Jobs names the quota).
	HeldReason string
	// Err is any other error of the last reconcile of the ref (a run that
	// hit an infrastructure error, a fetch of the commit that failed).
	Err string
	// ResultsBranch and ResultsCommit: the last results commit pushed.
	ResultsBranch, ResultsCommit string
}

// revision formats a ref's commit as Flux writes revisions: the branch
// name for refs/heads/..., the full ref otherwise, then @sha1:<hex>.
func revision(ref, commit string) string {
	if commit == "" {
		return ""
	}
	name := strings.TrimPrefix(ref, "refs/heads/")
	return name + "@sha1:" + commit
}

// maxMessage bounds every message written to the status: an error that
// lists a thousand invalid files must not grow the object.
const maxMessage = 1024

func bounded(s string) string {
	s = strings.ReplaceAll(s, "\n", "; ")
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage - len(" ... (truncated)")
	for cut > 0 && !utf8Start(s[cut]) {
		cut--
	}
	return s[:cut] + " ... (truncated)"
}

func utf8Start(b byte) bool { return b&0xC0 != 0x80 }

// setRefs writes the bounded per-ref status: refs in the order of
// spec.refs, then by name; at most MaxStatusRefs of them.
func setRefs(obj *v1alpha1.ExperimentRepository, views []refView) {
	sort.SliceStable(views, func(i, j int) bool {
		if views[i].Order != views[j].Order {
			return views[i].Order < views[j].Order
		}
		return views[i].Ref < views[j].Ref
	})
	obj.Status.RefsTotal = int32(len(views))
	n := min(len(views), v1alpha1.MaxStatusRefs)
	refs := make([]v1alpha1.RefStatus, 0, n)
	for _, v := range views[:n] {
		rs := v1alpha1.RefStatus{
			Name:           v.Ref,
			ObservedCommit: revision(v.Ref, v.Commit),
			Runs: v1alpha1.RunCounts{Planned: int32(v.Planned), Succeeded: int32(v.Succeeded), Failed: int32(v.Failed),
				Running: int32(v.Running), Held: int32(v.Held), InvalidExperiments: int32(v.InvalidCount)},
			Message: bounded(v.message()),
		}
		// Never without its branch (the form must not change: events
		// are sent once per results commit).
		if v.ResultsCommit != "" && v.ResultsBranch != "" {
			rs.LastResultsCommit = v.ResultsBranch + "@sha1:" + v.ResultsCommit
		}
		refs = append(refs, rs)
	}
	if len(refs) == 0 {
		refs = nil
	}
	obj.Status.Refs = refs
}

// message says in one line why the ref is not done, "" when it is.
func (v refView) message() string {
	var parts []string
	if v.InFlight != "" {
		parts = append(parts, fmt.Sprintf("runs of %s in flight (counted here); %s is reconciled next",
			revision(v.Ref, v.InFlight), revision(v.Ref, v.Commit)))
	}
	for _, p := range []string{v.NotVerified, v.SignErr, v.PushErr, v.Invalid, v.Err} {
		if p != "" {
			parts = append(parts, p)
		}
	}
	return strings.Join(parts, "; ")
}

// summarize sets the conditions from the refs' views (kstatus through
// Flux's conditions): the abnormal-true conditions name what failed,
// Reconciling says runs are in progress, Stalled that nothing will happen
// until the user acts (a new commit or a spec change), Ready the verdict.
// It never sets Ready=True while a run is in flight: `kubectl wait
// --for=condition=Ready` returns when the commit's results are in Git.
func summarize(obj *v1alpha1.ExperimentRepository, views []refView) {
	var (
		busy, notVerified, invalid, push, sign, other []refView
		planned, succeeded, failed, running, held     int
	)
	for _, v := range views {
		planned += v.Planned
		succeeded += v.Succeeded
		failed += v.Failed
		running += v.Running
		held += v.Held
		if v.Busy || v.Running > 0 {
			busy = append(busy, v)
		}
		if v.NotVerified != "" {
			notVerified = append(notVerified, v)
		}
		if v.Invalid != "" {
			invalid = append(invalid, v)
		}
		if v.PushErr != "" {
			push = append(push, v)
		}
		if v.SignErr != "" {
			sign = append(sign, v)
		}
		if v.Err != "" {
			other = append(other, v)
		}
	}
	first := func(list []refView, text func(refView) string) string {
		msg := revision(list[0].Ref, list[0].Commit) + ": " + text(list[0])
		if len(list) > 1 {
			msg += fmt.Sprintf(" (and %d more refs)", len(list)-1)
		}
		return bounded(msg)
	}
	abnormal := func(cond, reason string, list []refView, text func(refView) string) {
		if len(list) == 0 {
			conditions.Delete(obj, cond)
			return
		}
		conditions.MarkTrue(obj, cond, reason, "%s", first(list, text))
	}
	abnormal(v1alpha1.NotVerifiedCondition, v1alpha1.CommitNotVerifiedReason, notVerified, func(v refView) string { return v.NotVerified })
	abnormal(v1alpha1.InvalidExperimentsCondition, v1alpha1.InvalidExperimentsReason, invalid, func(v refView) string { return v.Invalid })
	abnormal(v1alpha1.PushFailedCondition, v1alpha1.PushFailedReason, push, func(v refView) string { return v.PushErr })
	abnormal(v1alpha1.SigningFailedCondition, v1alpha1.SigningKeyUnusableReason, sign, func(v refView) string { return v.SignErr })
	conditions.Delete(obj, v1alpha1.FetchFailedCondition)

	counts := fmt.Sprintf("%d runs planned: %d succeeded, %d failed, %d running, %d held", planned, succeeded, failed, running, held)
	switch {
	case len(sign) > 0:
		// Nothing can be signed: runs finish into the run cache only.
		conditions.Delete(obj, meta.StalledCondition)
		conditions.MarkTrue(obj, meta.ReconcilingCondition, meta.ProgressingWithRetryReason, "%s", first(sign, func(v refView) string { return v.SignErr }))
		conditions.MarkFalse(obj, meta.ReadyCondition, v1alpha1.SigningKeyUnusableReason, "%s", first(sign, func(v refView) string { return v.SignErr }))
	case len(busy) > 0:
		conditions.Delete(obj, meta.StalledCondition)
		conditions.MarkTrue(obj, meta.ReconcilingCondition, v1alpha1.RunsInProgressReason, "%s", bounded(progressMessage(busy)+"; "+counts))
		conditions.MarkUnknown(obj, meta.ReadyCondition, meta.ProgressingReason, "%s", bounded(progressMessage(busy)))
	case len(push) > 0 || len(other) > 0 || held > 0:
		// A retry will do: pushes are retried, held runs tried again.
		conditions.Delete(obj, meta.StalledCondition)
		reason, msg := v1alpha1.PushFailedReason, ""
		switch {
		case len(push) > 0:
			msg = first(push, func(v refView) string { return v.PushErr })
		case len(other) > 0:
			reason, msg = meta.FailedReason, first(other, func(v refView) string { return v.Err })
		default:
			reason, msg = v1alpha1.RunsHeldReason, counts
			for _, v := range views {
				if v.HeldReason != "" {
					msg = bounded(counts + "; " + revision(v.Ref, v.Commit) + ": " + v.HeldReason)
					break
				}
			}
		}
		conditions.MarkTrue(obj, meta.ReconcilingCondition, meta.ProgressingWithRetryReason, "%s", msg)
		conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
	case len(notVerified) > 0 || len(invalid) > 0:
		// Only a new commit (or a spec change) can fix these.
		conditions.Delete(obj, meta.ReconcilingCondition)
		reason, msg := v1alpha1.CommitNotVerifiedReason, ""
		if len(notVerified) > 0 {
			msg = first(notVerified, func(v refView) string { return v.NotVerified })
		} else {
			reason, msg = v1alpha1.InvalidExperimentsReason, first(invalid, func(v refView) string { return v.Invalid })
		}
		conditions.MarkStalled(obj, reason, "%s", msg)
		conditions.MarkFalse(obj, meta.ReadyCondition, reason, "%s", msg)
	default:
		conditions.Delete(obj, meta.ReconcilingCondition)
		conditions.Delete(obj, meta.StalledCondition)
		msg := "no watched ref exists yet"
		if len(views) > 0 {
			msg = readyMessage(views) + "; " + counts
		}
		conditions.MarkTrue(obj, meta.ReadyCondition, meta.SucceededReason, "%s", bounded(msg))
	}
}

func progressMessage(busy []refView) string {
	v := busy[0]
	var msg string
	switch {
	case v.InFlight != "":
		// The newest commit waits for the runs of an earlier one.
		msg = fmt.Sprintf("reconciling %s: %d of %d runs done, %d running; %s next",
			revision(v.Ref, v.InFlight), v.Succeeded+v.Failed, v.Planned, v.Running, revision(v.Ref, v.Commit))
	case v.Planned == 0 && v.Running == 0:
		msg = fmt.Sprintf("reconciling %s: planning its runs", revision(v.Ref, v.Commit))
	default:
		msg = fmt.Sprintf("reconciling %s: %d of %d runs done, %d running", revision(v.Ref, v.Commit), v.Succeeded+v.Failed, v.Planned, v.Running)
	}
	if len(busy) > 1 {
		msg += fmt.Sprintf(" (and %d more refs)", len(busy)-1)
	}
	return msg
}

func readyMessage(views []refView) string {
	v := views[0]
	for _, w := range views {
		if w.Order < v.Order || (w.Order == v.Order && w.Ref < v.Ref) {
			v = w
		}
	}
	msg := "results of " + revision(v.Ref, v.Commit) + " are committed"
	if len(views) > 1 {
		msg += fmt.Sprintf(" (and of %d more refs)", len(views)-1)
	}
	return msg
}
