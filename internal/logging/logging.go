// Package logging is how expsync's long-running commands log: log/slog with
// stable keys, as text for a terminal or JSON for a log pipeline, and one
// bridge to logr (controller-runtime and fluxcd/pkg/runtime/logger use
// logr), so `expsync serve` and `expsync controller` write the same keys
// through the same handlers. `expsync run` prints progress lines for people
// instead (cmd/expsync).
package logging

import (
	"fmt"
	"io"
	"log/slog"

	"github.com/go-logr/logr"
)

// Keys of the values every log line names the same way, so a pipeline can
// follow one repository, ref, commit, experiment or run across commands.
const (
	Repository = "repository"
	Ref        = "ref"
	Commit     = "commit"
	Experiment = "experiment"
	RunID      = "runID"
)

// Formats of New.
const (
	Text = "text" // key=value lines, for a terminal
	JSON = "json" // one JSON object a line, for a log pipeline
)

// Formats lists the formats New accepts.
var Formats = []string{Text, JSON}

// New returns a logger writing format to w at level and above.
func New(w io.Writer, format string, level slog.Level) (*slog.Logger, error) {
	opts := &slog.HandlerOptions{Level: level}
	switch format {
	case Text, "":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case JSON:
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("log format %q: use text or json", format)
}

// Discard returns a logger that drops everything (a nil logger's meaning).
func Discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// OrDiscard returns l, or Discard() when l is nil.
func OrDiscard(l *slog.Logger) *slog.Logger {
	if l == nil {
		return Discard()
	}
	return l
}

// Logr is l as a logr.Logger, for controller-runtime and Flux's runtime.
func Logr(l *slog.Logger) logr.Logger { return logr.FromSlogHandler(l.Handler()) }

// FromLogr is a logr.Logger as an *slog.Logger, for the packages that log
// through slog (reconcile) when the controller's logr logger is the sink.
func FromLogr(l logr.Logger) *slog.Logger { return slog.New(logr.ToSlogHandler(l)) }
