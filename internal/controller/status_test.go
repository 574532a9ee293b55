package controller

import (
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/fluxcd/pkg/apis/meta"
	"github.com/fluxcd/pkg/runtime/conditions"
	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/expsync/expsync/api/v1alpha1"
)

const sha = "0123456789abcdef0123456789abcdef01234567"

func TestRevision(t *testing.T) {
	for ref, want := range map[string]string{
		"refs/heads/main":   "main@sha1:" + sha,
		"refs/heads/exp/a":  "exp/a@sha1:" + sha,
		"refs/pull/12/head": "refs/pull/12/head@sha1:" + sha,
	} {
		if got := revision(ref, sha); got != want {
			t.Errorf("revision(%s) = %s, want %s", ref, got, want)
		}
	}
}

// TestSummarize: what each situation does to Ready, Reconciling and
// Stalled (kstatus), and which abnormal condition names it.
func TestSummarize(t *testing.T) {
	main := refView{Ref: "refs/heads/main", Commit: sha, Planned: 4, Succeeded: 3, Failed: 1}
	with := func(f func(*refView)) refView { v := main; f(&v); return v }
	type verdict struct {
		Ready, Reconciling, Stalled string // status/reason, "" when absent
		Abnormal                    []string
	}
	cases := []struct {
		name  string
		views []refView
		want  verdict
	}{
		{"all done", []refView{main}, verdict{Ready: "True/Succeeded"}},
		{"no ref yet", nil, verdict{Ready: "True/Succeeded"}},
		{"runs in flight", []refView{with(func(v *refView) { v.Busy, v.Running, v.Succeeded = true, 2, 1 })},
			verdict{Ready: "Unknown/Progressing", Reconciling: "True/RunsInProgress"}},
		{"invalid experiment while others run",
			[]refView{with(func(v *refView) {
				v.Busy, v.Running, v.Invalid, v.InvalidCount = true, 1, "experiments/bad.yaml:3:5: ...", 1
			})},
			verdict{Ready: "Unknown/Progressing", Reconciling: "True/RunsInProgress", Abnormal: []string{"InvalidExperiments"}}},
		{"invalid experiment, the rest done", []refView{with(func(v *refView) { v.Invalid, v.InvalidCount = "experiments/bad.yaml:3:5: ...", 1 })},
			verdict{Ready: "False/InvalidExperiments", Stalled: "True/InvalidExperiments", Abnormal: []string{"InvalidExperiments"}}},
		{"not verified", []refView{with(func(v *refView) { v.NotVerified = "commit abc is not signed" })},
			verdict{Ready: "False/CommitNotVerified", Stalled: "True/CommitNotVerified", Abnormal: []string{"NotVerified"}}},
		{"push failed", []refView{with(func(v *refView) { v.PushErr = "push refused" })},
			verdict{Ready: "False/PushFailed", Reconciling: "True/ProgressingWithRetry", Abnormal: []string{"PushFailed"}}},
		{"signing key", []refView{with(func(v *refView) { v.SignErr = "cosign.password does not open cosign.key" })},
			verdict{Ready: "False/SigningKeyUnusable", Reconciling: "True/ProgressingWithRetry", Abnormal: []string{"SigningFailed"}}},
		{"held by a quota", []refView{with(func(v *refView) { v.Held, v.HeldReason = 1, `ResourceQuota "runs" refuses the Job` })},
			verdict{Ready: "False/RunsHeld", Reconciling: "True/ProgressingWithRetry"}},
		{"one ref done, another not verified",
			[]refView{main, {Ref: "refs/pull/1/head", Commit: sha, NotVerified: "not signed", Order: 1}},
			verdict{Ready: "False/CommitNotVerified", Stalled: "True/CommitNotVerified", Abnormal: []string{"NotVerified"}}},
	}
	cond := func(obj *v1alpha1.ExperimentRepository, typ string) string {
		c := conditions.Get(obj, typ)
		if c == nil {
			return ""
		}
		return string(c.Status) + "/" + c.Reason
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			obj := &v1alpha1.ExperimentRepository{}
			// A previous verdict must not linger.
			conditions.MarkStalled(obj, "Old", "old")
			conditions.MarkTrue(obj, v1alpha1.PushFailedCondition, "Old", "old")
			summarize(obj, tc.views)
			got := verdict{Ready: cond(obj, meta.ReadyCondition), Reconciling: cond(obj, meta.ReconcilingCondition), Stalled: cond(obj, meta.StalledCondition)}
			for _, c := range obj.Status.Conditions {
				switch c.Type {
				case meta.ReadyCondition, meta.ReconcilingCondition, meta.StalledCondition:
				default:
					got.Abnormal = append(got.Abnormal, c.Type)
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("conditions (-want +got):\n%s", diff)
			}
			for _, c := range obj.Status.Conditions {
				if c.Status == metav1.ConditionFalse && c.Message == "" {
					t.Errorf("%s is False without a message", c.Type)
				}
			}
		})
	}
}

// TestStatusBounded: thousands of refs and a huge error keep the status
// within its bounds.
func TestStatusBounded(t *testing.T) {
	var views []refView
	huge := strings.Repeat("experiments/x.yaml:1:1: bad ✗; ", 10000)
	for i := range 5000 {
		views = append(views, refView{Ref: "refs/pull/" + strings.Repeat("1", 1+i%7) + string(rune('a'+i%26)) + "/head", Commit: sha, Order: 1, Invalid: huge})
	}
	views = append(views, refView{Ref: "refs/heads/main", Commit: sha})
	obj := &v1alpha1.ExperimentRepository{}
	setRefs(obj, views)
	summarize(obj, views)
	if len(obj.Status.Refs) != v1alpha1.MaxStatusRefs || obj.Status.RefsTotal != int32(len(views)) {
		t.Errorf("%d refs in status, total %d", len(obj.Status.Refs), obj.Status.RefsTotal)
	}
	if obj.Status.Refs[0].Name != "refs/heads/main" {
		t.Errorf("first ref %s, want main (the first pattern's)", obj.Status.Refs[0].Name)
	}
	for _, r := range obj.Status.Refs {
		if len(r.Message) > maxMessage || !utf8.ValidString(r.Message) {
			t.Fatalf("ref message of %d bytes", len(r.Message))
		}
	}
	for _, c := range obj.Status.Conditions {
		if len(c.Message) > maxMessage+200 {
			t.Errorf("%s message of %d bytes", c.Type, len(c.Message))
		}
		if !utf8.ValidString(c.Message) {
			t.Errorf("%s message cut inside a character", c.Type)
		}
	}
}
