package controller

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/pkg/runtime/conditions"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/yaml"

	"github.com/expsync/expsync/api/v1alpha1"
)

// TestJobDeleteForbidden: a controller whose RBAC lacks delete on Jobs (an
// operator's hand-written role) cannot delete the Jobs of runs a newer
// commit superseded: they keep running. That used to pass silently; now
// the object says so in a JobsNotDeleted condition naming the permission,
// with one Warning event (not one per reconcile).
func TestJobDeleteForbidden(t *testing.T) {
	f := newFixture(t, "jobs-no-delete")
	f.lab.Commit("experiments", squareSweep("1, 2"))
	f.create(time.Hour)

	// config/rbac/role.yaml's ClusterRole without delete on jobs, for a
	// user the controller impersonates.
	data, err := os.ReadFile(filepath.Join("..", "..", "config", "rbac", "role.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var role rbacv1.ClusterRole
	if err := yaml.Unmarshal([]byte(strings.TrimPrefix(strings.Split(string(data), "\n---\n")[0], "---\n")), &role); err != nil {
		t.Fatal(err)
	}
	removed := false
	for i, rule := range role.Rules {
		if slices.Contains(rule.Resources, "jobs") {
			role.Rules[i].Verbs = slices.DeleteFunc(rule.Verbs, func(v string) bool { removed = removed || v == "delete"; return v == "delete" })
		}
	}
	if !removed {
		t.Fatalf("config/rbac/role.yaml grants no delete on jobs: %+v", role.Rules)
	}
	const user = "expsync-without-job-delete"
	role.ObjectMeta = metav1.ObjectMeta{Name: user}
	ctx := context.Background()
	if err := f.c.Create(ctx, &role); err != nil {
		t.Fatal(err)
	}
	if err := f.c.Create(ctx, &rbacv1.ClusterRoleBinding{ObjectMeta: metav1.ObjectMeta{Name: user},
		RoleRef:  rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: user},
		Subjects: []rbacv1.Subject{{APIGroup: rbacv1.GroupName, Kind: rbacv1.UserKind, Name: user}}}); err != nil {
		t.Fatal(err)
	}
	cfg := apiServer(t)
	cfg.Impersonate = rest.ImpersonationConfig{UserName: user}
	storeRoot := t.TempDir()
	if err := os.MkdirAll(filepath.Join(storeRoot, f.key.Namespace, "store"), 0o755); err != nil {
		t.Fatal(err)
	}
	p := startKubeController(t, cfg, f.state, storeRoot)
	defer p.stop()
	waitFor(t, f.c, f.key, "2 runs in flight", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return len(o.Status.Refs) == 1 && o.Status.Refs[0].Runs.Running == 2
	})
	before := jobsOf(t, f.c, f.key.Namespace)

	// A new commit supersedes both runs: their Jobs are to be deleted.
	f.lab.Commit("other values", squareSweep("3, 4"))
	f.requestReconcile()
	obj := waitFor(t, f.c, f.key, "JobsNotDeleted", 2*time.Minute, func(o *v1alpha1.ExperimentRepository) bool {
		return conditions.IsTrue(o, v1alpha1.JobsNotDeletedCondition)
	})
	msg := conditions.GetMessage(obj, v1alpha1.JobsNotDeletedCondition)
	for _, want := range []string{"delete", "jobs", "batch", f.key.Namespace, "config/rbac/role.yaml"} {
		if !strings.Contains(msg, want) {
			t.Errorf("JobsNotDeleted message lacks %q: %s", want, msg)
		}
	}
	if got := conditions.GetReason(obj, v1alpha1.JobsNotDeletedCondition); got != v1alpha1.DeleteForbiddenReason {
		t.Errorf("JobsNotDeleted reason %q", got)
	}
	// More reconciles: still one warning.
	f.requestReconcile()
	time.Sleep(3 * time.Second)
	var events corev1.EventList
	if err := f.c.List(ctx, &events, client.InNamespace(f.key.Namespace)); err != nil {
		t.Fatal(err)
	}
	warnings := 0
	for _, e := range events.Items {
		if e.Reason == v1alpha1.DeleteForbiddenReason {
			warnings += int(max(e.Count, 1))
			if e.Type != corev1.EventTypeWarning {
				t.Errorf("event %s is %s, want Warning", e.Reason, e.Type)
			}
		}
	}
	if warnings != 1 {
		t.Errorf("%d DeleteForbidden events, want 1", warnings)
	}
	after := jobsOf(t, f.c, f.key.Namespace)
	for _, j := range before {
		if !slices.ContainsFunc(after, func(a batchv1.Job) bool { return a.UID == j.UID }) {
			t.Errorf("Job %s was deleted although the controller may not delete Jobs", j.Name)
		}
	}
}
