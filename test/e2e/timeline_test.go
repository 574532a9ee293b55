package e2e_test

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/watch"

	"github.com/expsync/expsync/render"
)

// The milestones of a Job's life as a watch sees them (API timestamps have
// second resolution; the watch's arrival time has the test's clock, the
// same clock the push is timed with).
const (
	msJobCreated   = "Job created"
	msPodCreated   = "pod created"
	msPodScheduled = "pod scheduled"
	msInitRunning  = "init running"
	msInitDone     = "init done"
	msRunRunning   = "run running"
	msRunDone      = "run done"
	msJobFinished  = "Job finished"
	msJobDeleted   = "Job deleted"
)

// timeline records when each milestone of each Job of a namespace was
// first seen, by Job name, from a Job watch and a pod watch started before
// anything runs.
type timeline struct {
	mu    sync.Mutex
	seen  map[string]map[string]time.Time // Job name → milestone → first seen
	runOf map[string]string               // Job name → run ID
}

func (n *node) watchTimeline(t testing.TB, ns string) *timeline {
	t.Helper()
	tl := &timeline{seen: map[string]map[string]time.Time{}, runOf: map[string]string{}}
	n.follow(t, func(ctx context.Context, rv string) (watch.Interface, error) {
		return n.client.BatchV1().Jobs(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	}, func(ev watch.Event) string {
		job, ok := ev.Object.(*batchv1.Job)
		if !ok {
			return ""
		}
		now := time.Now()
		tl.mu.Lock()
		defer tl.mu.Unlock()
		if id := job.Annotations[render.AnnotationRunID]; id != "" {
			tl.runOf[job.Name] = id
		}
		tl.mark(job.Name, msJobCreated, now)
		if typ, _ := jobFinished(job); typ != "" {
			tl.mark(job.Name, msJobFinished, now)
		}
		if ev.Type == watch.Deleted || job.DeletionTimestamp != nil {
			tl.mark(job.Name, msJobDeleted, now)
		}
		return job.ResourceVersion
	})
	n.follow(t, func(ctx context.Context, rv string) (watch.Interface, error) {
		return n.client.CoreV1().Pods(ns).Watch(ctx, metav1.ListOptions{ResourceVersion: rv})
	}, func(ev watch.Event) string {
		pod, ok := ev.Object.(*corev1.Pod)
		if !ok {
			return ""
		}
		job := pod.Labels["batch.kubernetes.io/job-name"]
		if job == "" {
			job = pod.Labels["job-name"]
		}
		if job == "" {
			return pod.ResourceVersion
		}
		now := time.Now()
		tl.mu.Lock()
		defer tl.mu.Unlock()
		tl.mark(job, msPodCreated, now)
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionTrue {
				tl.mark(job, msPodScheduled, now)
			}
		}
		for _, s := range pod.Status.InitContainerStatuses {
			tl.markContainer(job, s, msInitRunning, msInitDone, now)
		}
		for _, s := range pod.Status.ContainerStatuses {
			tl.markContainer(job, s, msRunRunning, msRunDone, now)
		}
		return pod.ResourceVersion
	})
	return tl
}

// mark records a milestone the first time it is seen (tl.mu held).
func (tl *timeline) mark(job, milestone string, at time.Time) {
	m := tl.seen[job]
	if m == nil {
		m = map[string]time.Time{}
		tl.seen[job] = m
	}
	if _, ok := m[milestone]; !ok {
		m[milestone] = at
	}
}

// markContainer: a container seen terminated was running before (a short
// one may never be seen running).
func (tl *timeline) markContainer(job string, s corev1.ContainerStatus, running, done string, at time.Time) {
	switch {
	case s.State.Running != nil:
		tl.mark(job, running, at)
	case s.State.Terminated != nil:
		tl.mark(job, running, at)
		tl.mark(job, done, at)
	}
}

// job returns the milestones of the Job of a run ID (or of a Job name).
func (tl *timeline) job(runIDOrName string) map[string]time.Time {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	name := runIDOrName
	for j, id := range tl.runOf {
		if id == runIDOrName {
			name = j
		}
	}
	out := map[string]time.Time{}
	for k, v := range tl.seen[name] {
		out[k] = v
	}
	return out
}

// stage is one step of a breakdown: the time from one mark to the next.
type stage struct {
	name     string
	from, to string
}

// breakdown collects, over iterations, each stage's duration.
type breakdown struct {
	stages []stage
	took   map[string][]time.Duration
}

func newBreakdown(stages ...stage) *breakdown {
	return &breakdown{stages: stages, took: map[string][]time.Duration{}}
}

// add records one iteration's marks; a stage with a mark missing is left
// out of that iteration (and counted as missing in the table).
func (bd *breakdown) add(marks map[string]time.Time) {
	for _, s := range bd.stages {
		from, ok1 := marks[s.from]
		to, ok2 := marks[s.to]
		if ok1 && ok2 {
			bd.took[s.name] = append(bd.took[s.name], to.Sub(from))
		}
	}
}

// print writes the stages' medians (and the sum of the medians) as a table.
func (bd *breakdown) print(title string) string {
	var lines []string
	lines = append(lines, title)
	lines = append(lines, fmt.Sprintf("  %-58s %9s %9s %4s", "stage", "p50", "max", "n"))
	var sum time.Duration
	for _, s := range bd.stages {
		d := append([]time.Duration(nil), bd.took[s.name]...)
		if len(d) == 0 {
			lines = append(lines, fmt.Sprintf("  %-58s %9s %9s %4d", s.name, "-", "-", 0))
			continue
		}
		sort.Slice(d, func(a, b int) bool { return d[a] < d[b] })
		p50 := quantile(d, 0.5)
		sum += p50
		lines = append(lines, fmt.Sprintf("  %-58s %9s %9s %4d", s.name, p50.Round(10*time.Millisecond), d[len(d)-1].Round(10*time.Millisecond), len(d)))
	}
	lines = append(lines, fmt.Sprintf("  %-58s %9s", "sum of the medians", sum.Round(10*time.Millisecond)))
	return strings.Join(lines, "\n")
}

// follow runs a watch (opened again from the last resource version when
// it ends) until the test ends; onEvent returns the event's resource
// version ("" to keep the last).
func (n *node) follow(t testing.TB, open func(ctx context.Context, rv string) (watch.Interface, error), onEvent func(watch.Event) string) {
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	go func() {
		rv := ""
		for ctx.Err() == nil {
			w, err := open(ctx, rv)
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				continue
			}
			for ev := range w.ResultChan() {
				if v := onEvent(ev); v != "" {
					rv = v
				}
			}
		}
	}()
}
