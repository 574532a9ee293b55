package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"sync"
	"syscall"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/platform"
	"github.com/expsync/expsync/internal/runner"
)

// record is what the journal knows about a run in flight.
type record struct {
	RunID       string            `json:"runID"`
	Contract    contract.Contract `json:"contract"`
	Meta        map[string]string `json:"meta,omitempty"`
	SubmittedAt time.Time         `json:"submittedAt"`
	// PGID is the process group (its leader's PID); 0 until started.
	PGID       int       `json:"pgid,omitempty"`
	StartTicks uint64    `json:"startTicks,omitempty"`
	Attempt    int       `json:"attempt,omitempty"`
	StartedAt  time.Time `json:"startedAt,omitzero"`
}

// entry is one line of the journal file.
type entry struct {
	Op string `json:"op"` // "run" (before start), "start" (process group known), "end"
	record
}

// journal is an append-only JSON-lines file: one write(2) per event, no
// file created per run. A line cut short by a crash is ignored on replay.
// It is compacted (rewritten with the runs in flight) when it grows past
// compactBytes, and emptied whenever no run is in flight.
type journal struct {
	path     string
	mu       sync.Mutex
	f        *os.File
	size     int64
	inflight map[string]*record
}

var compactBytes int64 = 4 << 20 // a variable so tests can lower it

func openJournal(path string) (*journal, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	return &journal{path: path, f: f, size: fi.Size(), inflight: map[string]*record{}}, nil
}

// append writes one event. It is not fsynced: the journal protects against
// the expsync process dying, which leaves the page cache intact.
func (j *journal) append(op string, rec record) error {
	line, err := json.Marshal(entry{Op: op, record: rec})
	if err != nil {
		return err
	}
	line = append(line, '\n')
	j.mu.Lock()
	defer j.mu.Unlock()
	switch op {
	case "run":
		r := rec
		j.inflight[rec.RunID] = &r
	case "start":
		if r, ok := j.inflight[rec.RunID]; ok {
			r.PGID, r.StartTicks, r.Attempt, r.StartedAt = rec.PGID, rec.StartTicks, rec.Attempt, rec.StartedAt
		}
	case "end":
		delete(j.inflight, rec.RunID)
	}
	if op == "end" && len(j.inflight) == 0 {
		// Nothing in flight: the journal's history is worthless.
		if err := j.f.Truncate(0); err == nil {
			j.size = 0
			return nil
		}
	}
	n, err := j.f.Write(line)
	j.size += int64(n)
	if err != nil {
		return err
	}
	if j.size > compactBytes {
		return j.compactLocked()
	}
	return nil
}

func (j *journal) run(rec record) error { return j.append("run", rec) }

func (j *journal) started(runID string, pgid int, ticks uint64, attempt int) error {
	return j.append("start", record{RunID: runID, PGID: pgid, StartTicks: ticks, Attempt: attempt, StartedAt: time.Now().UTC()})
}

func (j *journal) end(runID string) error { return j.append("end", record{RunID: runID}) }

// compactLocked rewrites the journal with the runs in flight only.
func (j *journal) compactLocked() error {
	var buf []byte
	for _, r := range j.inflight {
		line, err := json.Marshal(entry{Op: "run", record: *r})
		if err != nil {
			return err
		}
		buf = append(append(buf, line...), '\n')
	}
	tmp := j.path + ".tmp"
	if err := os.WriteFile(tmp, buf, 0o600); err != nil {
		return err
	}
	if err := os.Rename(tmp, j.path); err != nil {
		return err
	}
	f, err := os.OpenFile(j.path, os.O_RDWR|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	j.f.Close()
	j.f, j.size = f, int64(len(buf))
	return nil
}

// replay reads the runs the file says are in flight and empties it.
func (j *journal) replay() ([]record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	data, err := os.ReadFile(j.path)
	if err != nil {
		return nil, err
	}
	byID := map[string]*record{}
	var order []string
	for _, line := range bytes.Split(data, []byte("\n")) {
		var e entry
		if len(line) == 0 || json.Unmarshal(line, &e) != nil || e.RunID == "" {
			continue // a line cut short by a crash
		}
		switch e.Op {
		case "run":
			r := e.record
			if _, ok := byID[e.RunID]; !ok {
				order = append(order, e.RunID)
			}
			byID[e.RunID] = &r
		case "start":
			if r, ok := byID[e.RunID]; ok {
				r.PGID, r.StartTicks, r.Attempt, r.StartedAt = e.PGID, e.StartTicks, e.Attempt, e.StartedAt
			}
		case "end":
			delete(byID, e.RunID)
		}
	}
	var recs []record
	for _, id := range order {
		if r, ok := byID[id]; ok {
			recs = append(recs, *r)
		}
	}
	if err := j.f.Truncate(0); err != nil {
		return recs, err
	}
	j.size = 0
	return recs, nil
}

func (j *journal) close() { j.f.Close() }

// Recovered is a run that was in flight when a previous executor died.
type Recovered struct {
	Contract contract.Contract
	Meta     map[string]string
	// Result is the run's cached result when the store has one standing for
	// it (the run finished but the caller never saw it): recover it, do not
	// rerun it. Nil: submit the run again.
	Result *contract.Result
	// Ended is true when a leftover process group was killed.
	Ended bool
}

// Recover ends the process groups that runs of a previous, killed executor
// left behind, empties the journal and returns those runs. Call it once
// after New, before Submit. Errors about single records are joined into the
// error while the other runs are still returned.
func (e *Executor) Recover(ctx context.Context) ([]Recovered, error) {
	recs, err := e.journal.replay()
	var errs []error
	if err != nil {
		errs = append(errs, fmt.Errorf("journal: %w", err))
	}
	var out []Recovered
	var marked map[string][]int
	if len(recs) > 0 {
		ids := map[string]bool{}
		for _, rec := range recs {
			ids[rec.RunID] = true
		}
		marked = markedProcesses(ids)
	}
	for _, rec := range recs {
		r := Recovered{Contract: rec.Contract, Meta: rec.Meta}
		if rec.PGID > 0 {
			ended, err := endStaleGroup(ctx, rec.PGID, rec.StartTicks)
			if err != nil {
				errs = append(errs, fmt.Errorf("run %s: %w", rec.RunID, err))
			}
			r.Ended = ended
		}
		// Processes that left the group (setsid), or started before the
		// journal had the group, still carry EXPSYNC_RUN_ID. They are ours
		// unless another expsync runs the same run now (it holds the
		// run's lock).
		if pids := marked[rec.RunID]; len(pids) > 0 {
			if ended, err := e.endMarked(rec.RunID, pids); err != nil {
				errs = append(errs, fmt.Errorf("run %s: %w", rec.RunID, err))
			} else if ended {
				r.Ended = true
			}
		}
		res, ok, err := runner.Cached(ctx, e.opts.Store, rec.Contract)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", rec.RunID, err))
		}
		if ok {
			r.Result = res
		}
		out = append(out, r)
	}
	return out, errors.Join(errs...)
}

// endStaleGroup kills process group pgid if it is the one recorded: when its
// leader lives, only if the leader's start time matches (a different start
// time means the PID was reused by an unrelated process, and Linux never
// reuses a PID while a group of that ID exists, so our group is gone). When
// the leader is dead, members left in the group are ours: the ID cannot have
// been reused while they live. It waits for the group to disappear.
func endStaleGroup(ctx context.Context, pgid int, startTicks uint64) (bool, error) {
	if ticks, err := runner.ProcessStartTicks(pgid); err == nil && startTicks != 0 && ticks != startTicks {
		return false, nil
	}
	members := groupMembers(pgid)
	if len(members) == 0 {
		return false, nil
	}
	if err := syscall.Kill(-pgid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return false, fmt.Errorf("end stale process group %d: %w", pgid, err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(groupMembers(pgid)) > 0 {
		if time.Now().After(deadline) {
			return true, fmt.Errorf("process group %d still has members 5s after SIGKILL", pgid)
		}
		select {
		case <-ctx.Done():
			return true, ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	return true, nil
}

// endMarked kills the processes marked with runID if no one holds the
// run's lock.
func (e *Executor) endMarked(runID string, pids []int) (bool, error) {
	tried, cancel := context.WithCancel(context.Background())
	cancel() // LockRun tries once before it looks at the context
	unlock, err := e.opts.Store.LockRun(tried, runID)
	if err != nil {
		return false, nil // running elsewhere right now: not ours to end
	}
	defer unlock()
	ended := false
	for _, pid := range pids {
		if err := syscall.Kill(pid, syscall.SIGKILL); err == nil {
			ended = true
		}
	}
	return ended, nil
}

// markedProcesses finds the live processes whose environment has
// EXPSYNC_RUN_ID set to one of ids (only processes of this user are
// readable, which are the only ones a run can have started).
func markedProcesses(ids map[string]bool) map[string][]int {
	pids, err := platform.PIDs()
	if err != nil {
		return nil
	}
	out := map[string][]int{}
	self := os.Getpid()
	for _, pid := range pids {
		if pid == self {
			continue
		}
		env, err := platform.Environ(pid)
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if id, ok := bytes.CutPrefix(kv, []byte("EXPSYNC_RUN_ID=")); ok && ids[string(id)] {
				out[string(id)] = append(out[string(id)], pid)
				break
			}
		}
	}
	return out
}

// groupMembers lists the live (not zombie) processes of group pgid.
func groupMembers(pgid int) []int {
	all, err := platform.PIDs()
	if err != nil {
		return nil
	}
	var pids []int
	for _, pid := range all {
		if st, err := platform.ReadStat(pid); err == nil && st.PGRP == pgid && st.State != 'Z' {
			pids = append(pids, pid)
		}
	}
	return pids
}
