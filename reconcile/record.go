package reconcile

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"sort"

	"github.com/expsync/expsync/attest"
	"github.com/expsync/expsync/contract"
	"github.com/expsync/expsync/internal/results"
	"github.com/expsync/expsync/render"
	"github.com/expsync/expsync/store"
)

// buildFolder turns a runner result into the run's signed results folder.
func (r *Reconciler) buildFolder(ctx context.Context, t Target, layout results.Layout, run render.Run, res *contract.Result) (*results.Folder, error) {
	rec := r.record(t, run, res)
	metrics, err := r.metricsOf(ctx, res)
	if err != nil {
		return nil, err
	}
	var log *results.OutputFile
	if res.LogSHA256 != "" {
		log = &results.OutputFile{SHA256: res.LogSHA256, Size: res.LogSize,
			Open: func() ([]byte, error) {
				if res.LogSize == 0 {
					return []byte{}, nil // a quiet run: nothing to read back
				}
				return readObject(ctx, r.Store, res.LogSHA256)
			}}
	}
	var outputs []results.OutputFile
	for _, o := range res.Outputs {
		o := o
		of := results.OutputFile{Path: o.Path, SHA256: o.SHA256, Size: o.Size}
		// Outputs holding a secret's value stay in the store (no Open:
		// BuildFolder then never commits them).
		if o.Mode != store.ModeSymlink && res.Committable(o.Path) {
			of.Open = func() ([]byte, error) { return readObject(ctx, r.Store, o.SHA256) }
		}
		outputs = append(outputs, of)
	}
	folder, err := results.BuildFolder(layout, rec, metrics, log, outputs, results.DefaultLimits)
	if err != nil {
		return nil, err
	}
	if err := r.sign(t, run, folder); err != nil {
		return nil, err
	}
	// What expsync writes, expsync must read back (contract/limits.go).
	if n := len(folder.File(results.EnvelopeFile)); n > contract.MaxEnvelopeBytes {
		if err := folder.DropOutputs(fmt.Sprintf("its signed attestation would have %d bytes, over the limit of %d bytes", n, contract.MaxEnvelopeBytes)); err != nil {
			return nil, err
		}
		if err := r.sign(t, run, folder); err != nil {
			return nil, err
		}
		if n := len(folder.File(results.EnvelopeFile)); n > contract.MaxEnvelopeBytes {
			return nil, fmt.Errorf("run %s: its attestation has %d bytes without its outputs, over the limit of %d", run.ID, n, contract.MaxEnvelopeBytes)
		}
	}
	return folder, nil
}

// record fills run.json from the plan, the target and the result.
func (r *Reconciler) record(t Target, run render.Run, res *contract.Result) *results.Record {
	c := run.Contract
	rec := &results.Record{
		RunID: run.ID, IDVersion: c.Identity.IDVersion, Experiment: run.Experiment, SpecPath: run.SpecPath,
		Repository: results.SanitizeURL(t.Repository), Ref: t.Ref, Commit: t.Commit,
		ContextTree: c.Context.Tree, ContextExcluded: c.Context.Excluded, SpecBlob: run.SpecBlob, Params: run.Params, Image: c.Image,
		Status: contract.Status(res.Status), ExitCode: res.ExitCode, Reason: res.Error, MetricsError: res.MetricsError,
		StartedAt: res.StartedAt, FinishedAt: res.FinishedAt, Attempts: res.Attempts,
		Usage: contract.Usage{CPUSeconds: res.Usage.CPUSeconds, MaxRSSBytes: res.Usage.MaxRSSBytes,
			MaxRSSMethod: res.Usage.MaxRSSMethod, SelfReported: res.Usage.SelfReported},
		Requests:   contract.Requests{CPU: c.Limits.CPU, Memory: c.Limits.Memory},
		Executor:   r.executorName(),
		Scheduling: c.SchedulingDigest(),
		Identity:   c.Identity,
	}
	if res.Status == contract.Succeeded {
		rec.Reason = ""
	}
	if res.Queue != "" && !res.AdmittedAt.IsZero() {
		rec.Queue = &results.Queue{Name: res.Queue, AdmittedAt: res.AdmittedAt.UTC(),
			WaitSeconds: math.Round(max(0, res.AdmittedAt.Sub(res.QueuedAt).Seconds())*1000) / 1000}
	}
	rec.SelfReported = slices.Clone(res.SelfReported)
	for _, tpl := range run.Templates {
		rec.Templates = append(rec.Templates, results.GitFile{Path: tpl.Path, Blob: tpl.Blob})
	}
	for _, in := range c.Inputs {
		rec.Inputs = append(rec.Inputs, results.Input{Name: in.Name, Path: in.Path, SHA256: in.SHA256,
			URI: results.SanitizeURL(in.URI), RepoPath: in.RepoPath, GitBlob: in.GitBlob})
	}
	return rec
}

// metricsOf returns the metrics file exactly as the run wrote it when the
// store has it, otherwise the parsed numbers.
func (r *Reconciler) metricsOf(ctx context.Context, res *contract.Result) ([]byte, error) {
	if res.MetricsSHA256 != "" {
		if data, err := readObject(ctx, r.Store, res.MetricsSHA256); err == nil {
			if _, err := results.NormalizeMetrics(data); err == nil {
				return data, nil
			}
		}
	}
	if len(res.Metrics) == 0 {
		return nil, nil
	}
	return json.Marshal(res.Metrics)
}

// sign attests the folder's subjects and adds the envelope.
func (r *Reconciler) sign(t Target, run render.Run, folder *results.Folder) error {
	rec := folder.Record
	contractJSON, err := json.Marshal(run.Contract)
	if err != nil {
		return fmt.Errorf("run %s: encode contract: %w", run.ID, err)
	}
	a := attest.Run{
		RunID: rec.RunID, Experiment: rec.Experiment, Repository: rec.Repository, Ref: rec.Ref, Commit: rec.Commit,
		ContextPath: run.Contract.Context.Path, ContextTree: rec.ContextTree, SpecPath: rec.SpecPath, SpecBlob: rec.SpecBlob,
		Image: rec.Image, Params: rec.Params, BuilderID: r.BuilderID,
		StartedOn: rec.StartedAt, FinishedOn: rec.FinishedAt, ExitCode: rec.ExitCode, Status: string(rec.Status),
		Contract: contractJSON,
	}
	for _, tpl := range rec.Templates {
		a.Templates = append(a.Templates, attest.GitFile{Path: tpl.Path, Blob: tpl.Blob})
	}
	for _, in := range rec.Inputs {
		a.Inputs = append(a.Inputs, attest.Input{Name: in.Name, URI: in.URI, SHA256: in.SHA256})
	}
	for _, s := range folder.Subjects() {
		a.Subjects = append(a.Subjects, attest.Subject{Name: s.Name, SHA256: s.SHA256})
	}
	sort.Slice(a.Subjects, func(i, j int) bool { return a.Subjects[i].Name < a.Subjects[j].Name })
	signer, _, err := r.keys()
	if err != nil {
		return err
	}
	env, err := attest.SignRun(a, signer)
	if err != nil {
		return fmt.Errorf("sign run %s: %w", run.ID, err)
	}
	folder.SetEnvelope(env)
	return nil
}

func (r *Reconciler) executorName() string {
	if r.ExecutorName != "" {
		return r.ExecutorName
	}
	return "local"
}

// errCorruptObject marks a store object that no longer holds the bytes
// its name is the digest of (a power cut, a disk error, an edit by hand).
var errCorruptObject = errors.New("store object corrupt")

// readObject reads a store object and checks it against its name: a
// corrupt one is dropped from the store (so the run cache no longer counts
// the results that name it) and reported with errCorruptObject.
func readObject(ctx context.Context, st store.Store, sha string) ([]byte, error) {
	rc, err := st.Open(ctx, sha)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	var buf bytes.Buffer
	if _, err := io.Copy(&buf, rc); err != nil {
		return nil, err
	}
	if got := contract.SHA256Hex(buf.Bytes()); got != sha {
		if l, ok := st.(store.Linker); ok {
			l.Drop(sha)
		}
		return nil, fmt.Errorf("%w: %s holds bytes with sha256 %s; dropped, the run executes again", errCorruptObject, sha, got)
	}
	return buf.Bytes(), nil
}
