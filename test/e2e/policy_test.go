package e2e_test

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/render"
)

// writeRepo writes an experiment repository of files (path → content).
func writeRepo(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// serveOnNode serves files over HTTP on the node's bridge address, where
// pods reach the host: the URL inputs of the tests.
func serveOnNode(t *testing.T, n *node, files map[string]string) string {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(n.nodeIP, "0"))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, ok := files[strings.TrimPrefix(r.URL.Path, "/")]
		if !ok {
			http.NotFound(w, r)
			return
		}
		_, _ = w.Write([]byte(body))
	}), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	return "http://" + ln.Addr().String()
}

func sha256Hex(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// TestPodsOnARealNode runs experiments written to attack what a rendered pod
// promises, on the real node:
//   - isolation: the command runs as UID/GID 65532 with no capabilities, a
//     read-only root file system, no service-account token and an
//     environment of exactly what the experiment declares;
//   - a URL input fetched by the init container over the pod network and
//     verified; the same URL declared with a wrong digest fails the Job at
//     once (exit 65, FailJob), naming both digests;
//   - exit codes meet the podFailurePolicy as the real Job controller
//     applies it: a code not declared transient fails at once (one pod), a
//     declared transient code is retried until the retries are used up.
func TestPodsOnARealNode(t *testing.T) {
	n := realNode(t)
	data := "measurements 1 2 3\n"
	base := serveOnNode(t, n, map[string]string{"data.txt": data})
	exp := func(name, command, extra string) string {
		return fmt.Sprintf(`apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: %s}
spec:
  image: %s
  command: [sh, -c, %q]
  resources: {cpu: 100m, memory: 64Mi}
  timeout: 1m
%s`, name, n.busyboxImage, command, extra)
	}
	probe := `mkdir -p out; {
echo "uid=$(id -u) gid=$(id -g) groups=$(id -G)";
if touch /probe 2>/dev/null; then echo rootfs=writable; else echo rootfs=readonly; fi;
if [ -e /var/run/secrets/kubernetes.io/serviceaccount/token ]; then echo token=mounted; else echo token=none; fi;
grep -E '^Cap(Eff|Prm|Bnd):' /proc/self/status | tr '\t' ' ';
grep -E '^NoNewPrivs:' /proc/self/status | tr '\t' ' ';
echo "env=$(env | cut -d= -f1 | sort | tr '\n' ' ')";
} > out/probe.txt`
	repo := writeRepo(t, map[string]string{
		"experiments/probe.yaml": exp("probe", probe, `  outputs: [out/probe.txt]
  env: [{name: DECLARED, value: "yes"}]
`),
		"experiments/url.yaml": exp("url-input", "mkdir -p out && cp inputs/data.txt out/copy.txt", fmt.Sprintf(`  inputs: [{name: data, uri: %q, sha256: %s, path: inputs/data.txt}]
  outputs: [out/copy.txt]
`, base+"/data.txt", sha256Hex(data))),
		"experiments/url-wrong.yaml": exp("url-input-wrong", "cat inputs/data.txt", fmt.Sprintf(`  inputs: [{name: data, uri: %q, sha256: %s, path: inputs/data.txt}]
  outputs: [out/none]
  retries: {limit: 2}
`, base+"/data.txt", sha256Hex("something else\n"))),
		"experiments/exit3.yaml": exp("exit-three", "exit 3", `  outputs: [out/none]
  retries: {limit: 2, onExitCodes: [75]}
`),
		"experiments/exit75.yaml": exp("exit-transient", "exit 75", `  outputs: [out/none]
  retries: {limit: 1, onExitCodes: [75]}
`),
	})
	ran := n.runRepository(t, "pods", repo, 5*time.Minute)
	byExperiment := map[string]render.JobObjects{}
	for _, o := range ran.objs {
		byExperiment[o.Job.Labels[render.LabelExperiment]] = o
	}
	job := func(exp string) *batchv1.Job { return ran.jobs[byExperiment[exp].Job.Name] }

	t.Run("isolation", func(t *testing.T) {
		o := byExperiment["probe"]
		j := job("probe")
		if typ, _ := jobFinished(j); typ != batchv1.JobComplete {
			n.describe(t, ran.ns)
			t.Fatalf("probe: %s", typ)
		}
		res := checkPod(t, n, ran.vs, n.podsOf(t, j)[0], o)
		got := string(prefixObject(t, ran.vs, res.RunID, res.Outputs[0].SHA256))
		t.Logf("probe.txt:\n%s", got)
		for _, want := range []string{
			"uid=65532 gid=65532", "rootfs=readonly", "token=none",
			"CapEff: 0000000000000000", "CapPrm: 0000000000000000", "NoNewPrivs: 1",
		} {
			if !strings.Contains(got, want) {
				t.Errorf("the command's view of its pod lacks %q", want)
			}
		}
		// The environment: what the experiment declares, plus what the runner
		// sets for every command (HOME, PATH, TMPDIR...) — no service links,
		// nothing of the kubelet's (KUBERNETES_*).
		env := got[strings.Index(got, "env=")+4:]
		if !strings.Contains(env, "DECLARED") || strings.Contains(env, "KUBERNETES_") {
			t.Errorf("the command's environment is %q: want DECLARED and nothing of Kubernetes", env)
		}
	})

	t.Run("url input", func(t *testing.T) {
		o := byExperiment["url-input"]
		j := job("url-input")
		if typ, _ := jobFinished(j); typ != batchv1.JobComplete {
			n.describe(t, ran.ns)
			t.Fatalf("url-input: %s", typ)
		}
		res := checkPod(t, n, ran.vs, n.podsOf(t, j)[0], o)
		if got := string(prefixObject(t, ran.vs, res.RunID, res.Outputs[0].SHA256)); got != data {
			t.Errorf("the run copied %q from its URL input, the server served %q", got, data)
		}
	})

	t.Run("wrong digest fails at once", func(t *testing.T) {
		j := job("url-input-wrong")
		typ, cond := jobFinished(j)
		if typ != batchv1.JobFailed || cond.Reason != batchv1.JobReasonPodFailurePolicy {
			t.Fatalf("Job %s: %s %v, want Failed by the PodFailurePolicy", j.Name, typ, cond)
		}
		pods := n.podsOf(t, j)
		if len(pods) != 1 {
			t.Errorf("%d pods: a wrong digest must not be retried", len(pods))
		}
		prep := pods[0].Status.InitContainerStatuses[0].State.Terminated
		if prep == nil || prep.ExitCode != contract.ExitInputMismatch {
			t.Fatalf("prepare: %+v, want exit %d", prep, contract.ExitInputMismatch)
		}
		var pm prepareMessage
		if err := json.Unmarshal([]byte(prep.Message), &pm); err != nil || pm.Verified || pm.Mismatch == nil ||
			pm.Mismatch.Want != sha256Hex("something else\n") || pm.Mismatch.Got != sha256Hex(data) {
			t.Errorf("prepare's termination message %q (%v): want the mismatch with both digests", prep.Message, err)
		}
		if rs := pods[0].Status.ContainerStatuses; len(rs) == 1 && (rs[0].State.Terminated != nil || rs[0].State.Running != nil) {
			t.Errorf("the run container started although the inputs did not verify: %s", containerState(rs[0].State))
		}
	})

	t.Run("exit code not transient fails at once", func(t *testing.T) {
		j := job("exit-three")
		typ, cond := jobFinished(j)
		if typ != batchv1.JobFailed || cond.Reason != batchv1.JobReasonPodFailurePolicy {
			t.Fatalf("Job %s: %s %v, want Failed by the PodFailurePolicy", j.Name, typ, cond)
		}
		pods := n.podsOf(t, j)
		if len(pods) != 1 {
			t.Errorf("%d pods, want 1: exit 3 is not declared transient", len(pods))
		}
		if s := pods[0].Status.ContainerStatuses[0].State.Terminated; s == nil || s.ExitCode != 3 {
			t.Errorf("run: %s, want exit 3 (the command's own code)", containerState(pods[0].Status.ContainerStatuses[0].State))
		}
	})

	t.Run("transient exit code is retried", func(t *testing.T) {
		j := job("exit-transient")
		typ, cond := jobFinished(j)
		if typ != batchv1.JobFailed || cond.Reason != batchv1.JobReasonBackoffLimitExceeded {
			t.Fatalf("Job %s: %s %v, want Failed after its retries (BackoffLimitExceeded)", j.Name, typ, cond)
		}
		pods := n.podsOf(t, j)
		if len(pods) != 2 {
			t.Errorf("%d pods, want 2: one attempt and one retry", len(pods))
		}
		for _, p := range pods {
			if s := p.Status.ContainerStatuses[0].State.Terminated; s == nil || s.ExitCode != 75 {
				t.Errorf("pod %s run: %s, want exit 75", p.Name, containerState(p.Status.ContainerStatuses[0].State))
			}
		}
	})
}
