package reproduce

import (
	"context"
	"fmt"
	"time"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/runner"
)

// Options are one reproduction's settings.
type Options struct {
	// Folder is the verification policy: trusted keys, builder IDs, the
	// store holding outputs not committed.
	Folder attest.FolderOptions
	// Machine is where it runs.
	Machine Machine
	// BuilderID names who reproduces in the statement (default: local mode,
	// unisolated).
	BuilderID string
	// Progress receives the steps as they happen; it must not block.
	Progress func(Event)
	// Heartbeat is how often a running reproduction reports (default 10s).
	Heartbeat time.Duration
	// Execute runs the contract once, afresh (never the run cache); nil
	// runs it with the runner here. serve's audit passes its executor's,
	// so reproductions share the machine's capacity with runs.
	Execute func(ctx context.Context, c contract.Contract) (*contract.Result, error)
}

// Event is one step of a reproduction, for progress output.
type Event struct {
	Kind    EventKind
	RunID   string
	Message string
	// Elapsed is the time since the command started (EventRunning).
	Elapsed time.Duration
}

// EventKind names a step.
type EventKind string

const (
	EventVerified EventKind = "verified"
	EventPrepared EventKind = "prepared"
	EventStarted  EventKind = "started"
	EventRunning  EventKind = "running"
	EventFinished EventKind = "finished"
)

// Outcome is what became of one run folder.
type Outcome struct {
	Path       string
	RunID      string
	Experiment string
	// Refused says why the run was not executed: the folder does not
	// verify, or the contract cannot be rebuilt from it.
	Refused error
	// Problems say why it cannot be reproduced here (found before anything
	// ran).
	Problems []Problem
	// Failed says why an execution gave no verdict (an infrastructure
	// error, a cancellation).
	Failed string
	// Reproduction is the verdict; nil unless the run executed.
	Reproduction *attest.Reproduction
	// Lines quote where differing text outputs first differ.
	Lines map[string]string
	// Material is what the folder attests (nil when it does not verify).
	Material *Material
	// Contract is what was executed.
	Contract *contract.Contract
}

// OK reports whether the run reproduced: identical, or within the
// declared tolerances.
func (o *Outcome) OK() bool {
	return o.Reproduction != nil && o.Reproduction.Verdict != attest.VerdictDiffers
}

// Reproduce executes the run folder dir again from its attestation and
// compares the result (see the package documentation for the steps). The
// error is for the caller's own failures (a cancelled context); every
// reason a run was not or could not be reproduced is in the Outcome.
func Reproduce(ctx context.Context, dir string, opts Options) (*Outcome, error) {
	m, err := Load(dir, opts.Folder)
	if err != nil {
		out := &Outcome{Path: dir, Refused: err}
		if m != nil && m.Report != nil {
			out.RunID = m.Report.RunID
		}
		return out, nil
	}
	return ReproduceMaterial(ctx, m, opts)
}

// ReproduceMaterial is Reproduce for a folder already loaded (LoadTree).
func ReproduceMaterial(ctx context.Context, m *Material, opts Options) (*Outcome, error) {
	out := &Outcome{Path: m.Dir, Material: m, RunID: m.RunID, Experiment: m.Record.Experiment}
	opts.progress(Event{Kind: EventVerified, RunID: m.RunID, Message: "attestation verified (" + m.Verified.BuilderID + ")"})
	c, err := Rebuild(m, "file://"+opts.Machine.Store.Root())
	if err != nil {
		out.Refused = err
		return out, nil
	}
	out.Contract = &c
	tol := tolerancesOf(m, opts.Machine.Objects)
	problems, sources, err := Prepare(ctx, m, c, opts.Machine)
	if err != nil {
		return out, err
	}
	if len(problems) > 0 {
		out.Problems = problems
		return out, nil
	}
	opts.progress(Event{Kind: EventPrepared, RunID: m.RunID, Message: fmt.Sprintf("contract rebuilt (run ID recomputed), context %s and %d input(s) in the store", contract.ShortID(c.Context.Tree), len(sources))})
	res, err := opts.execute(ctx, c)
	if err != nil {
		return out, err
	}
	opts.progress(Event{Kind: EventFinished, RunID: m.RunID, Message: fmt.Sprintf("%s, exit code %d", res.Status, res.ExitCode)})
	if res.Status == contract.Cancelled || res.Status == contract.Errored {
		out.Failed = fmt.Sprintf("%s: %s", res.Status, res.Error)
		if ctx.Err() != nil {
			return out, ctx.Err()
		}
		return out, nil
	}
	cmp := Compare(ctx, m, c.Metrics, res, tol, opts.Machine.Store)
	out.Lines = cmp.Lines
	builder := opts.BuilderID
	if builder == "" {
		builder = attest.DefaultBuilderID
	}
	rec := m.Record
	out.Reproduction = &attest.Reproduction{
		RunID:      m.RunID,
		Experiment: rec.Experiment,
		Verdict:    cmp.Verdict,
		Original: attest.RunOutcome{BuilderID: m.Verified.BuilderID, StartedOn: timestamp(rec.StartedAt), FinishedOn: timestamp(rec.FinishedAt),
			Status: string(rec.Status), ExitCode: rec.ExitCode, LogSHA256: rec.LogSHA256},
		Reproduced: attest.RunOutcome{BuilderID: builder, StartedOn: timestamp(res.StartedAt), FinishedOn: timestamp(res.FinishedAt),
			Status: string(res.Status), ExitCode: res.ExitCode, LogSHA256: res.LogSHA256},
		Status:     cmp.Status,
		Outputs:    cmp.Outputs,
		Metrics:    cmp.Metrics,
		Log:        cmp.Log,
		Tolerances: tol.Source,
		Materials:  attest.Materials{ContextPath: c.Context.Path, ContextTree: c.Context.Tree, Inputs: sources},
	}
	return out, nil
}

// tolerancesOf reads the attested tolerances, or says why everything must
// be identical.
func tolerancesOf(m *Material, objs *Objects) Tolerances {
	if objs == nil {
		return Strict(m, fmt.Errorf("no repository to read %s@%s from", m.Record.SpecPath, contract.ShortID(m.Record.SpecBlob)))
	}
	t, err := ReadTolerances(objs, m)
	if err != nil {
		return Strict(m, err)
	}
	return t
}

// execute runs the contract once, afresh: through the runner, never the
// run cache (the attested result stays the run's), reporting its progress.
func (opts Options) execute(ctx context.Context, c contract.Contract) (*contract.Result, error) {
	if opts.Execute != nil {
		return opts.Execute(ctx, c)
	}
	ro := opts.Machine.Runner
	ro.Store = opts.Machine.Store
	started := make(chan time.Time, 1)
	userOnStart := ro.OnStart
	ro.OnStart = func(s runner.Started) {
		opts.progress(Event{Kind: EventStarted, RunID: c.RunID, Message: fmt.Sprintf("attempt %d started (pid %d)", s.Attempt, s.PID)})
		select {
		case started <- time.Now():
		default:
		}
		if userOnStart != nil {
			userOnStart(s)
		}
	}
	done := make(chan struct{})
	defer close(done)
	go opts.heartbeat(c.RunID, started, done)
	return runner.Run(ctx, c, ro)
}

// heartbeat reports a long run every Heartbeat while it goes on.
func (opts Options) heartbeat(runID string, started <-chan time.Time, done <-chan struct{}) {
	every := opts.Heartbeat
	if every <= 0 {
		every = 10 * time.Second
	}
	var since time.Time
	select {
	case since = <-started:
	case <-done:
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			opts.progress(Event{Kind: EventRunning, RunID: runID, Elapsed: time.Since(since).Round(time.Second)})
		case <-done:
			return
		}
	}
}

func (opts Options) progress(e Event) {
	if opts.Progress != nil {
		opts.Progress(e)
	}
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
