package e2e_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/fluxcd/pkg/apis/meta"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/apimachinery/pkg/watch"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/expsync/expsync/api/v1alpha1"
	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

// controllerUID is the user the chart runs the controller as (and render
// the run pods): the hostPath store must be theirs.
const controllerUID = 65532

// lab is expsync deployed as users deploy it: the chart installed in a
// restricted namespace (namespace mode: Roles only), a hostPath-backed claim
// as the store, a cosign key pair Secret, a Git server the controller's pod
// reaches, and an ExperimentRepository for it.
type lab struct {
	n      *node
	t      testing.TB
	ns     string
	remote *gitRemote
	// pub is the signing key's public half, for expsync verify.
	pub  string
	repo client.ObjectKey
	// jobs counts every Job created in the namespace, by run ID (from a
	// watch started before the first push).
	jobs *jobLog
}

// controllerValues are the chart values of the tier: the local expsync
// image by digest (never pulled: there is no registry), namespace mode, the
// claim "store", and results committed a second after runs end (the
// latency figure measures the loop, not a batching choice).
func (n *node) controllerValues(t testing.TB) string {
	t.Helper()
	repository, digest, ok := strings.Cut(n.expsyncImage, "@")
	if !ok {
		t.Fatalf("EXPSYNC_EXPSYNC_IMAGE %q is not pinned by digest", n.expsyncImage)
	}
	return fmt.Sprintf(`image: {repository: %q, digest: %q, pullPolicy: Never}
watch: {mode: namespace}
crds: {install: false}
store: {claims: [%s]}
controller:
  batchInterval: 1s
  logEncoding: console
  logLevel: debug
`, repository, digest, storeClaim)
}

// newLab deploys the controller with the chart and creates the repository
// (changed by each of edit first).
func (n *node) newLab(t testing.TB, prefix string, edit ...func(*v1alpha1.ExperimentRepository)) *lab {
	t.Helper()
	chart := chartDir(t)
	n.installCRD(t, chart)
	ns := n.namespace(t, prefix)
	n.hostClaim(t, ns)
	l := &lab{n: n, t: t, ns: ns, remote: n.gitServer(t), jobs: n.watchJobs(t, ns)}
	n.helmInstall(t, "expsync", ns, chart, n.controllerValues(t))
	l.pub = l.signingSecret()
	l.repo = client.ObjectKey{Namespace: ns, Name: "lab"}
	er := &v1alpha1.ExperimentRepository{
		ObjectMeta: metav1.ObjectMeta{Name: l.repo.Name, Namespace: ns},
		Spec: v1alpha1.ExperimentRepositorySpec{
			URL: l.remote.url, AllowHTTP: true,
			Refs:        []v1alpha1.WatchedRef{{Pattern: "main", Trusted: true}},
			Interval:    &metav1.Duration{Duration: 10 * time.Second},
			Attestation: v1alpha1.Attestation{SecretRef: &meta.LocalObjectReference{Name: "signing-key"}},
			Execution:   v1alpha1.Execution{ServiceAccountName: "expsync-runs"},
			Store:       v1alpha1.Store{ClaimName: storeClaim},
		},
	}
	for _, e := range edit {
		e(er)
	}
	if err := n.ctl.Create(context.Background(), er); err != nil {
		t.Fatal(err)
	}
	return l
}

// installCRD applies the chart's CRD (files/crds, generated from the Go
// types) once per cluster, as a cluster admin does for namespaced installs
// (the chart's examples/namespaced.yaml): releases in several namespaces
// cannot each own the one cluster-scoped CRD.
func (n *node) installCRD(t testing.TB, chart string) {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chart, "files", "crds", "*.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("the chart has no CRD in files/crds (%v)", err)
	}
	ctx := context.Background()
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		crd := &apiextensionsv1.CustomResourceDefinition{}
		if err := yaml.Unmarshal(data, crd); err != nil {
			t.Fatalf("%s: %v", f, err)
		}
		live := &apiextensionsv1.CustomResourceDefinition{}
		if err := n.ctl.Get(ctx, client.ObjectKey{Name: crd.Name}, live); err == nil {
			crd.ResourceVersion = live.ResourceVersion
			err = n.ctl.Update(ctx, crd)
			if err != nil {
				t.Fatal(err)
			}
		} else if err := n.ctl.Create(ctx, crd); err != nil {
			t.Fatal(err)
		}
		waitFor(t, time.Minute, "CRD "+crd.Name+" established", func() (bool, error) {
			if err := n.ctl.Get(ctx, client.ObjectKey{Name: crd.Name}, live); err != nil {
				return false, err
			}
			for _, c := range live.Status.Conditions {
				if c.Type == apiextensionsv1.Established && c.Status == apiextensionsv1.ConditionTrue {
					return true, nil
				}
			}
			return false, nil
		})
	}
}

// signingSecret makes the cosign key pair Secret the repository signs with
// and returns the path of its public key.
func (l *lab) signingSecret() string {
	l.t.Helper()
	priv, err := attest.GenerateKey(attest.KeyECDSA)
	if err != nil {
		l.t.Fatal(err)
	}
	pair, err := attest.EncodeKeyPair(priv, []byte("pw"))
	if err != nil {
		l.t.Fatal(err)
	}
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: l.ns, Name: "signing-key"},
		Data: map[string][]byte{"cosign.key": pair.Private, "cosign.password": []byte("pw"), "cosign.pub": pair.Public}}
	if err := l.n.ctl.Create(context.Background(), s); err != nil {
		l.t.Fatal(err)
	}
	pub := filepath.Join(l.t.TempDir(), "cosign.pub")
	if err := os.WriteFile(pub, pair.Public, 0o644); err != nil {
		l.t.Fatal(err)
	}
	return pub
}

// push pushes the folder src as the repository's next commit and asks the
// controller to look at once (reconcile.fluxcd.io/requestedAt, what
// `flux reconcile` and a forge's webhook receiver set).
func (l *lab) push(msg, src string) string {
	l.t.Helper()
	c := l.remote.pushTree(msg, src)
	l.requestReconcile()
	return c
}

func (l *lab) requestReconcile() {
	l.t.Helper()
	er := &v1alpha1.ExperimentRepository{}
	ctx := context.Background()
	if err := l.n.ctl.Get(ctx, l.repo, er); err != nil {
		l.t.Fatal(err)
	}
	patch := client.MergeFrom(er.DeepCopy())
	ann := er.GetAnnotations()
	if ann == nil {
		ann = map[string]string{}
	}
	ann[meta.ReconcileRequestAnnotation] = time.Now().Format(time.RFC3339Nano)
	er.SetAnnotations(ann)
	if err := l.n.ctl.Patch(ctx, er, patch); err != nil {
		l.t.Fatal(err)
	}
}

// runRecord is what the tier reads of a committed run.json.
type runRecord struct {
	RunID      string          `json:"runID"`
	Experiment string          `json:"experiment"`
	Commit     string          `json:"commit"`
	Status     contract.Status `json:"status"`
	ExitCode   int             `json:"exitCode"`
	Reason     string          `json:"reason"`
	Attempts   int             `json:"attempts"`
	Requests   struct {
		Memory string `json:"memory"`
	} `json:"requests"`
	Queue *struct {
		Name        string    `json:"name"`
		AdmittedAt  time.Time `json:"admittedAt"`
		WaitSeconds float64   `json:"waitSeconds"`
	} `json:"queue"`
	// folder is the run's folder in the repository (results/<exp>/<id>).
	folder string
}

// results reads every run.json of the server's main: folder → record.
func (l *lab) results() map[string]runRecord {
	l.t.Helper()
	l.remote.pull()
	out := map[string]runRecord{}
	root := filepath.Join(l.remote.peer, "results")
	_ = filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "run.json" {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil {
			l.t.Fatal(err)
		}
		var r runRecord
		if err := json.Unmarshal(data, &r); err != nil {
			l.t.Fatalf("%s: %v", p, err)
		}
		rel, _ := filepath.Rel(l.remote.peer, filepath.Dir(p))
		r.folder = filepath.ToSlash(rel)
		out[r.folder] = r
		return nil
	})
	return out
}

// waitResults waits until the server's main holds a result for every run
// ID of want, and the repository has no run left running; it returns all
// results by run ID, failing on a run ID with two folders.
func (l *lab) waitResults(want []string, timeout time.Duration) map[string]runRecord {
	l.t.Helper()
	var byID map[string]runRecord
	var missing []string
	waitFor(l.t, timeout, fmt.Sprintf("results of %d runs on main", len(want)), func() (bool, error) {
		byID = map[string]runRecord{}
		for _, r := range l.results() {
			if prev, dup := byID[r.RunID]; dup {
				l.t.Fatalf("run %s has two results folders: %s and %s", r.RunID, prev.folder, r.folder)
			}
			byID[r.RunID] = r
		}
		missing = missing[:0]
		for _, id := range want {
			if _, ok := byID[id]; !ok {
				missing = append(missing, id)
			}
		}
		return len(missing) == 0, nil
	}, func() {
		l.t.Logf("missing results: %v", missing)
		l.logStatus()
		l.n.describe(l.t, l.ns)
	})
	return byID
}

// logStatus logs the repository's status and the controller's last log lines.
func (l *lab) logStatus() {
	er := &v1alpha1.ExperimentRepository{}
	if err := l.n.ctl.Get(context.Background(), l.repo, er); err == nil {
		b, _ := json.MarshalIndent(er.Status, "", "  ")
		l.t.Logf("status of %s: %s", l.repo, b)
	}
	pods, err := l.n.client.CoreV1().Pods(l.ns).List(context.Background(), metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=expsync"})
	if err != nil {
		return
	}
	for _, p := range pods.Items {
		// kubectl logs cannot reach the node by name here: the kubelet's
		// log files are on this host.
		files, _ := filepath.Glob(filepath.Join(l.n.dir, "logs", "pods", l.ns+"_"+p.Name+"_*", "*", "*.log"))
		for _, f := range files {
			data, _ := os.ReadFile(f)
			lines := strings.Split(strings.TrimSpace(string(data)), "\n")
			if len(lines) > 40 {
				lines = lines[len(lines)-40:]
			}
			l.t.Logf("controller log %s:\n%s", f, strings.Join(lines, "\n"))
		}
	}
}

// saveControllerLog copies the controller pod's log (the kubelet's files
// on this host) to file, for reading a run's timeline; "" does nothing.
func (l *lab) saveControllerLog(file string) {
	if file == "" {
		return
	}
	files, _ := filepath.Glob(filepath.Join(l.n.dir, "logs", "pods", l.ns+"_expsync-*", "*", "*.log"))
	var all []byte
	for _, f := range files {
		data, _ := os.ReadFile(f)
		all = append(all, data...)
	}
	if err := os.WriteFile(file, all, 0o644); err != nil {
		l.t.Logf("save the controller's log: %v", err)
	}
}

// verify runs `expsync verify --repo` on a fresh clone of the server's
// main: every run folder's signature, subjects and identity, and the
// reachability of what it attests.
func (l *lab) verify() {
	l.t.Helper()
	clone := l.remote.clone()
	cmd := exec.Command(l.n.expsync, "verify", filepath.Join(clone, "results"), "--key", l.pub, "--repo", clone)
	out, err := cmd.CombinedOutput()
	if err != nil {
		l.t.Fatalf("expsync verify --repo on a fresh clone: %v\n%s", err, out)
	}
	l.t.Logf("expsync verify --repo on a fresh clone:\n%s", lastLines(string(out), 5))
}

func lastLines(s string, n int) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// plannedRuns is the independent count: the run IDs `expsync render` plans
// for the folder (the same planner as the controller, run by the CLI).
func (n *node) plannedRuns(t testing.TB, dir string) []string {
	t.Helper()
	var ids []string
	for _, o := range n.renderJobs(t, dir, "plan") {
		ids = append(ids, o.Job.Annotations[render.AnnotationRunID])
	}
	sort.Strings(ids)
	return ids
}

// jobLog records every Job ADDED in a namespace, by run ID, from a watch
// that never misses one (resumed from its last resource version), and when
// each was seen deleted.
type jobLog struct {
	mu      sync.Mutex
	created map[string][]string // run ID → Job UIDs
	// life is each Job's creation and the time its deletion was seen.
	life map[string]*jobLife
}

type jobLife struct {
	name             string
	created, deleted time.Time
}

func (n *node) watchJobs(t testing.TB, ns string) *jobLog {
	t.Helper()
	jl := &jobLog{created: map[string][]string{}, life: map[string]*jobLife{}}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	seen := map[string]bool{}
	go func() {
		rv := ""
		for ctx.Err() == nil {
			w, err := n.client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv, AllowWatchBookmarks: true})
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				job, ok := ev.Object.(*batchv1.Job)
				if !ok {
					continue
				}
				rv = job.ResourceVersion
				if ev.Type == watch.Deleted || job.DeletionTimestamp != nil {
					jl.mu.Lock()
					if l := jl.life[string(job.UID)]; l != nil && l.deleted.IsZero() {
						l.deleted = time.Now()
					}
					jl.mu.Unlock()
				}
				if ev.Type != watch.Added || seen[string(job.UID)] {
					continue
				}
				seen[string(job.UID)] = true
				id := job.Annotations[render.AnnotationRunID]
				jl.mu.Lock()
				jl.created[id] = append(jl.created[id], string(job.UID))
				jl.life[string(job.UID)] = &jobLife{name: job.Name, created: job.CreationTimestamp.Time}
				jl.mu.Unlock()
			}
		}
	}()
	return jl
}

// count returns run ID → Jobs created.
func (jl *jobLog) count() map[string]int {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	out := map[string]int{}
	for id, uids := range jl.created {
		out[id] = len(uids)
	}
	return out
}

// experimentFile writes one experiment file into a copy of dir.
func withExperiment(t testing.TB, dir, name, yaml string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "repo")
	if err := os.CopyFS(out, os.DirFS(dir)); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(out, "experiments", path.Clean(name))
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// overlaps reports a run that had two Jobs alive at once: the second
// created before the first was seen deleted (a run executing twice).
func (jl *jobLog) overlaps(runID string) string {
	jl.mu.Lock()
	defer jl.mu.Unlock()
	uids := jl.created[runID]
	for i := 1; i < len(uids); i++ {
		prev, next := jl.life[uids[i-1]], jl.life[uids[i]]
		if prev.deleted.IsZero() || next.created.Before(prev.deleted.Truncate(time.Second)) {
			return fmt.Sprintf("Job %s was created at %s while Job %s still existed (deleted %s)",
				next.name, next.created.Format(time.RFC3339), prev.name, prev.deleted.Format(time.RFC3339))
		}
	}
	return ""
}
