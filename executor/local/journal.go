package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/runner"
)

// record is a journal entry of a run in flight.
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

type journal struct{ dir string }

func (j *journal) path(runID string) string { return filepath.Join(j.dir, runID+".json") }

// write records rec. It is not fsynced: the journal protects against the
// expsync process dying, which leaves the page cache intact.
func (j *journal) write(rec record) error {
	data, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	tmp := j.path(rec.RunID) + ".tmp"
	if err := os.WriteFile(tmp, data, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, j.path(rec.RunID))
}

func (j *journal) remove(runID string) { _ = os.Remove(j.path(runID)) }

func (j *journal) list() ([]record, []error) {
	entries, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, []error{err}
	}
	var recs []record
	var errs []error
	for _, e := range entries {
		name := e.Name()
		if strings.HasSuffix(name, ".tmp") {
			_ = os.Remove(filepath.Join(j.dir, name))
			continue
		}
		if !strings.HasSuffix(name, ".json") {
			continue
		}
		data, err := os.ReadFile(filepath.Join(j.dir, name))
		var rec record
		if err == nil {
			err = json.Unmarshal(data, &rec)
		}
		if err != nil {
			errs = append(errs, fmt.Errorf("journal %s: %w (removed)", name, err))
			_ = os.Remove(filepath.Join(j.dir, name))
			continue
		}
		recs = append(recs, rec)
	}
	return recs, errs
}

// Recovered is a run that was in flight when a previous executor died.
type Recovered struct {
	Contract contract.Contract
	Meta     map[string]string
	// Result is the run's cached result when the store has one standing for
	// it (the run finished but the caller never saw it): recover it, do not
	// rerun it. Nil: submit the run again.
	Result *runner.Result
	// Ended is true when a leftover process group was killed.
	Ended bool
}

// Recover ends the process groups that runs of a previous, killed executor
// left behind, empties the journal and returns those runs. Call it once
// after New, before Submit. Errors about single records are joined into the
// error while the other runs are still returned.
func (e *Executor) Recover(ctx context.Context) ([]Recovered, error) {
	recs, errs := e.journal.list()
	var out []Recovered
	for _, rec := range recs {
		r := Recovered{Contract: rec.Contract, Meta: rec.Meta}
		if rec.PGID > 0 {
			ended, err := endStaleGroup(ctx, rec.PGID, rec.StartTicks)
			if err != nil {
				errs = append(errs, fmt.Errorf("run %s: %w", rec.RunID, err))
			}
			r.Ended = ended
		}
		res, ok, err := runner.Cached(ctx, e.opts.Store, rec.Contract)
		if err != nil {
			errs = append(errs, fmt.Errorf("run %s: %w", rec.RunID, err))
		}
		if ok {
			r.Result = res
		}
		out = append(out, r)
		e.journal.remove(rec.RunID)
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

// groupMembers lists the live (not zombie) processes of group pgid.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		s := string(b)
		i := strings.LastIndexByte(s, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(s[i+1:])
		// f[0] state, f[1] ppid, f[2] pgrp
		if len(f) > 2 && f[2] == strconv.Itoa(pgid) && f[0] != "Z" {
			pids = append(pids, pid)
		}
	}
	return pids
}
