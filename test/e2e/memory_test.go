package e2e_test

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// TestRunnerMemoryInTheRunContainer: what expsync adds to the memory of a
// run's container, under the run's own memory limit. `expsync exec` is PID
// 1 of the run container, so it is the run's reaper itself (internal/runner
// pidinit.go): exactly one expsync process is charged to the run — a second
// one (the reaper re-exec) pushed a 32Mi run against its limit before its
// command had done anything. The run asks for 32Mi and must succeed; the
// processes of its container, their RSS and the container's memory cgroup
// are logged (docs/real-cluster.md quotes them).
func TestRunnerMemoryInTheRunContainer(t *testing.T) {
	n := realNode(t)
	ns := n.namespace(t, "memory")
	vs := n.hostStore(t, ns)
	dir := t.TempDir()
	yaml := fmt.Sprintf(`apiVersion: expsync.dev/v1alpha1
kind: Experiment
metadata: {name: footprint}
spec:
  image: %s
  command: [sh, -c, "sleep 6; mkdir -p out && echo ok > out/ok"]
  outputs: [out/ok]
  resources: {cpu: 100m, memory: 32Mi}
  timeout: 1m
`, n.busyboxImage)
	if err := os.MkdirAll(filepath.Join(dir, "experiments"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "experiments", "footprint.yaml"), []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	objs := n.renderJobs(t, dir, ns)
	if len(objs) != 1 {
		t.Fatalf("%d Jobs rendered, want 1", len(objs))
	}
	exportRuns(t, vs, dir, objs)
	ctx := context.Background()
	job, err := n.create(ctx, vs, objs[0])
	if err != nil {
		t.Fatal(err)
	}
	// While the command sleeps: the run container's processes.
	var procs []hostProcess
	waitFor(t, 3*time.Minute, "the run container's command to run", func() (bool, error) {
		pods, err := n.client.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
		if err != nil || len(pods.Items) == 0 {
			return false, err
		}
		var id string
		for _, s := range pods.Items[0].Status.ContainerStatuses {
			if s.Name == "run" && s.State.Running != nil {
				_, id, _ = strings.Cut(s.ContainerID, "://")
			}
		}
		if id == "" {
			return false, nil
		}
		procs = containerProcesses(id, "/expsync/expsync")
		for _, p := range procs {
			if p.comm == "sleep" {
				return true, nil
			}
		}
		return false, nil
	}, func() { n.describe(t, ns) })
	var expsyncs int
	var lines []string
	for _, p := range procs {
		if p.comm == "expsync" {
			expsyncs++
		}
		lines = append(lines, fmt.Sprintf("  pid %-7d %-8s Rss %6d KiB (anon %6d, file %6d)  %s", p.pid, p.comm, p.rssKiB, p.anonKiB, p.fileKiB, p.cmdline))
	}
	t.Logf("processes of the run container (memory limit 32Mi):\n%s", strings.Join(lines, "\n"))
	if len(procs) > 0 {
		t.Logf("its memory cgroup (%s):\n%s", procs[0].memcg, memcgSummary(procs[0].memcg))
	}
	if expsyncs != 1 {
		t.Errorf("%d expsync processes in the run container, want 1 (`expsync exec` as PID 1 needs no reaper process)", expsyncs)
	}
	done := n.waitJobs(t, ns, []string{job.Name}, 2*time.Minute)
	if typ, cond := jobFinished(done[job.Name]); typ != batchv1.JobComplete {
		n.describe(t, ns)
		t.Fatalf("the 32Mi run ended %s: %+v", typ, cond)
	}
	for _, p := range n.podsOf(t, done[job.Name]) {
		for _, s := range p.Status.ContainerStatuses {
			if s.State.Terminated != nil && s.State.Terminated.Reason == "OOMKilled" {
				t.Errorf("container %s of the 32Mi run was OOMKilled", s.Name)
			}
		}
	}
}

// hostProcess is a process of a pod's container, as this host sees it.
type hostProcess struct {
	pid                      int
	comm, cmdline, memcg     string
	rssKiB, anonKiB, fileKiB int
}

// containerProcesses finds the process of the container containerID (the
// runtime's ID, in its cgroup's path) whose command line starts with exe,
// and returns every process of its container (its memory cgroup), with
// their RSS from /proc/<pid>/smaps_rollup.
func containerProcesses(containerID, exe string) []hostProcess {
	entries, _ := os.ReadDir("/proc")
	var memcg string
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if !bytes.HasPrefix(cmd, []byte(exe+"\x00exec")) {
			continue
		}
		cg, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid))
		if !strings.Contains(string(cg), containerID) {
			continue
		}
		memcg = memoryCgroup(string(cg))
		break
	}
	if memcg == "" {
		return nil
	}
	data, _ := os.ReadFile(filepath.Join(memcg, "cgroup.procs"))
	var out []hostProcess
	for _, f := range strings.Fields(string(data)) {
		pid, _ := strconv.Atoi(f)
		comm, _ := os.ReadFile(fmt.Sprintf("/proc/%d/comm", pid))
		cmd, _ := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		p := hostProcess{pid: pid, comm: strings.TrimSpace(string(comm)), memcg: memcg,
			cmdline: strings.TrimSpace(strings.ReplaceAll(string(cmd), "\x00", " "))}
		if len(p.cmdline) > 90 {
			p.cmdline = p.cmdline[:90] + "…"
		}
		p.rssKiB, p.anonKiB, p.fileKiB = smapsRollup(pid)
		out = append(out, p)
	}
	return out
}

// memoryCgroup is the folder of the memory cgroup in /proc/<pid>/cgroup's
// text: cgroup v1's memory controller, else the v2 (unified) group.
func memoryCgroup(text string) string {
	var unified string
	for _, line := range strings.Split(text, "\n") {
		parts := strings.SplitN(line, ":", 3)
		if len(parts) != 3 {
			continue
		}
		for _, c := range strings.Split(parts[1], ",") {
			if c == "memory" {
				return filepath.Join("/sys/fs/cgroup/memory", parts[2])
			}
		}
		if parts[0] == "0" && parts[1] == "" {
			unified = parts[2]
		}
	}
	if unified == "" {
		return ""
	}
	if _, err := os.Stat("/sys/fs/cgroup/unified"); err == nil {
		return filepath.Join("/sys/fs/cgroup/unified", unified)
	}
	return filepath.Join("/sys/fs/cgroup", unified)
}

func smapsRollup(pid int) (rss, anon, file int) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/smaps_rollup", pid))
	if err != nil {
		return 0, 0, 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 {
			continue
		}
		v, _ := strconv.Atoi(fields[1])
		switch fields[0] {
		case "Rss:":
			rss = v
		case "Anonymous:":
			anon = v
		}
	}
	return rss, anon, rss - anon
}

// memcgSummary picks the usage and the lines of memory.stat that say where
// a container's memory goes.
func memcgSummary(dir string) string {
	var lines []string
	for _, f := range []string{"memory.usage_in_bytes", "memory.max_usage_in_bytes", "memory.limit_in_bytes", "memory.current", "memory.peak", "memory.max"} {
		if data, err := os.ReadFile(filepath.Join(dir, f)); err == nil {
			lines = append(lines, fmt.Sprintf("  %s %s", f, strings.TrimSpace(string(data))))
		}
	}
	data, _ := os.ReadFile(filepath.Join(dir, "memory.stat"))
	keep := map[string]bool{"rss": true, "cache": true, "mapped_file": true, "shmem": true, "anon": true, "file": true, "file_mapped": true}
	for _, line := range strings.Split(string(data), "\n") {
		if f := strings.Fields(line); len(f) == 2 && keep[f[0]] {
			lines = append(lines, "  "+line)
		}
	}
	return strings.Join(lines, "\n")
}
