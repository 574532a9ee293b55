package controller

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	eventv1 "github.com/fluxcd/pkg/apis/event/v1"
	"github.com/fluxcd/pkg/apis/meta"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/internal/gitpeer"
)

// pushPullRequest commits files on top of base in the peer and pushes the
// commit as refs/pull/<n>/head (main is left alone), as a forge does for a
// pull request.
func pushPullRequest(t testing.TB, lab *gitpeer.Lab, base string, n int, files map[string]string) string {
	t.Helper()
	lab.Git(lab.Peer, "checkout", "-q", "-B", fmt.Sprintf("pr%d", n), base)
	for name, content := range files {
		full := filepath.Join(lab.Peer, filepath.FromSlash(name))
		if content == gitpeer.Delete {
			if err := os.RemoveAll(full); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	lab.Git(lab.Peer, "add", "-A")
	lab.Git(lab.Peer, "commit", "-q", "-m", fmt.Sprintf("pull request %d", n))
	lab.Git(lab.Peer, "push", "-q", "origin", fmt.Sprintf("HEAD:refs/pull/%d/head", n))
	commit := strings.TrimSpace(lab.Git(lab.Peer, "rev-parse", "HEAD"))
	lab.Git(lab.Peer, "checkout", "-q", "main")
	return commit
}

// TestPullRequestEventsForNotificationController: the final event of each
// pull request's commit carries what Flux's notification-controller needs
// to set a commit status and comment on the pull request — <group>/revision,
// <group>/commit_status: update and event.toolkit.fluxcd.io/change_request
// with the number — as Normal when every run succeeded and Warning (a
// failure status) when a run failed or the commit runs nothing (no
// experiment loads); once per commit, never with a credential.
func TestPullRequestEventsForNotificationController(t *testing.T) {
	f := newFixture(t, "pr-events")
	base := strings.TrimSpace(f.lab.Commit("one run on main", squareSweep("2")))
	good := pushPullRequest(t, f.lab, base, 7, squareSweep("3"))
	failing := pushPullRequest(t, f.lab, base, 8, map[string]string{"code/square/square.sh": "echo broken >&2; exit 3\n"})
	refused := pushPullRequest(t, f.lab, base, 9, merge(map[string]string{"experiments/square.yaml": gitpeer.Delete}, invalidExperiment))
	obj := &v1alpha1.ExperimentRepository{ObjectMeta: metav1.ObjectMeta{Namespace: f.key.Namespace, Name: f.key.Name},
		Spec: v1alpha1.ExperimentRepositorySpec{
			URL: f.repoURL(), AllowHTTP: true, SecretRef: &meta.LocalObjectReference{Name: "git"},
			Refs: []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true},
				{Pattern: "refs/pull/*/head", Trusted: true, ResultsBranch: "expsync/results/pr-{{number}}"}},
			Interval:    &metav1.Duration{Duration: time.Hour},
			Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
			Store:       v1alpha1.Store{ClaimName: "store"},
		}}
	if err := f.c.Create(context.Background(), obj); err != nil {
		t.Fatal(err)
	}
	p := f.controller()

	want := map[string]struct {
		reason, typ, pr string
	}{
		"refs/pull/7/head@sha1:" + good:    {"ResultsCommitted", corev1.EventTypeNormal, "7"},
		"refs/pull/8/head@sha1:" + failing: {"ResultsCommitted", corev1.EventTypeWarning, "8"},
		"refs/pull/9/head@sha1:" + refused: {v1alpha1.InvalidExperimentsReason, corev1.EventTypeWarning, "9"},
		"main@sha1:" + base:                {"ResultsCommitted", corev1.EventTypeNormal, ""},
	}
	final := func() map[string][]corev1.Event {
		var events corev1.EventList
		if err := f.c.List(context.Background(), &events, client.InNamespace(f.key.Namespace)); err != nil {
			t.Fatal(err)
		}
		out := map[string][]corev1.Event{}
		for _, e := range events.Items {
			if e.InvolvedObject.Name != f.key.Name {
				continue
			}
			if strings.Contains(e.Message, gitPassword) || strings.Contains(fmt.Sprint(e.Annotations), gitPassword) {
				t.Errorf("event %s shows the Git password", e.Reason)
			}
			if e.Annotations[v1alpha1.Group+"/"+eventv1.MetaCommitStatusKey] == eventv1.MetaCommitStatusUpdateValue {
				rev := e.Annotations[v1alpha1.Group+"/"+eventv1.MetaRevisionKey]
				out[rev] = append(out[rev], e)
			}
		}
		return out
	}
	var got map[string][]corev1.Event
	deadline := time.Now().Add(3 * time.Minute)
	for {
		got = final()
		if len(got) >= len(want) || time.Now().After(deadline) {
			break
		}
		time.Sleep(300 * time.Millisecond)
	}
	// A second look after more reconciles: still one event per commit.
	f.update(func(o *v1alpha1.ExperimentRepository) {
		o.Annotations = map[string]string{meta.ReconcileRequestAnnotation: time.Now().String()}
	})
	time.Sleep(3 * time.Second)
	got = final()
	p.stop()
	for rev, w := range want {
		events := got[rev]
		if len(events) != 1 || events[0].Count > 1 {
			for _, e := range events {
				t.Logf("%s x%d %s %q %v", e.Type, e.Count, e.Reason, e.Message, e.Annotations)
			}
			t.Errorf("%s: %d final events (want exactly 1); all: %v", rev, len(events), keys(got))
			continue
		}
		e := events[0]
		if e.Reason != w.reason || e.Type != w.typ {
			t.Errorf("%s: %s/%s %q, want %s/%s", rev, e.Type, e.Reason, e.Message, w.typ, w.reason)
		}
		if pr := e.Annotations[eventv1.Group+"/"+eventv1.MetaChangeRequestKey]; pr != w.pr {
			t.Errorf("%s: change_request %q, want %q", rev, pr, w.pr)
		}
	}
	if e := got["refs/pull/9/head@sha1:"+refused]; len(e) == 1 && !strings.Contains(e[0].Message, "experiments/broken.yaml:7:") {
		t.Errorf("the refused commit's event does not name file:line: %q", e[0].Message)
	}
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	return out
}
