package controller

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/go-logr/logr"
)

// shutdownLog lowers to info the error lines a clean shutdown with leader
// election makes: once the manager stops, client-go's elector reports
// "Failed to renew lease"/"Error retrieving lease lock" with
// context.Canceled and controller-runtime may log the elector's "leader
// election lost" ("error received after stop sequence was engaged").
// Operators alert on error lines; a lease given up on SIGTERM is not one.
// Before the stop, every error line stays an error (a lease lost while
// running also ends the manager with that error, which Run returns).
type shutdownLog struct {
	stopping atomic.Bool
}

// logger wraps log's sink.
func (s *shutdownLog) logger(log logr.Logger) logr.Logger {
	if log.GetSink() == nil {
		return log
	}
	return logr.New(&shutdownSink{LogSink: log.GetSink(), s: s})
}

// Start marks the stop (a manager runnable outside leader election: its
// context ends when the stop sequence begins, before the elector's).
func (s *shutdownLog) Start(ctx context.Context) error {
	<-ctx.Done()
	s.stopping.Store(true)
	return nil
}

// NeedLeaderElection: runs on every replica.
func (*shutdownLog) NeedLeaderElection() bool { return false }

const leaderElectionLost = "leader election lost"

type shutdownSink struct {
	logr.LogSink
	s *shutdownLog
}

func (k *shutdownSink) Error(err error, msg string, kv ...any) {
	if k.s.stopping.Load() && err != nil && (errors.Is(err, context.Canceled) || err.Error() == leaderElectionLost) {
		k.LogSink.Info(0, msg+" (shutting down)", append(kv, "reason", err.Error())...)
		return
	}
	k.LogSink.Error(err, msg, kv...)
}

func (k *shutdownSink) WithValues(kv ...any) logr.LogSink {
	return &shutdownSink{LogSink: k.LogSink.WithValues(kv...), s: k.s}
}

func (k *shutdownSink) WithName(name string) logr.LogSink {
	return &shutdownSink{LogSink: k.LogSink.WithName(name), s: k.s}
}

// WithCallDepth keeps the call sites right when the wrapped sink reports them.
func (k *shutdownSink) WithCallDepth(depth int) logr.LogSink {
	if cd, ok := k.LogSink.(logr.CallDepthLogSink); ok {
		return &shutdownSink{LogSink: cd.WithCallDepth(depth), s: k.s}
	}
	return k
}
