package logging

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/expsync/expsync/internal/redact"
)

// Redacting returns a logger that writes what l would, with every
// occurrence of each secret (the passwords and tokens a deployment was
// given) and the password of any user:password@ URL replaced by
// redact.Marker: in the message, in keys, in values (strings, errors,
// anything printed with %v) and in groups, including the attributes of
// With. Errors from libraries (go-git, HTTP clients, a forge) may quote a
// credential; the log line is the last place to stop it.
func Redacting(l *slog.Logger, secrets []string) *slog.Logger {
	l = OrDiscard(l)
	return slog.New(redactHandler{h: l.Handler(), secrets: redact.LongestFirst(secrets)})
}

type redactHandler struct {
	h       slog.Handler
	secrets []string
}

func (r redactHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return r.h.Enabled(ctx, level)
}

func (r redactHandler) Handle(ctx context.Context, rec slog.Record) error {
	out := slog.NewRecord(rec.Time, rec.Level, r.text(rec.Message), rec.PC)
	rec.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(r.attr(a))
		return true
	})
	return r.h.Handle(ctx, out)
}

func (r redactHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return redactHandler{h: r.h.WithAttrs(r.attrs(attrs)), secrets: r.secrets}
}

func (r redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h: r.h.WithGroup(r.text(name)), secrets: r.secrets}
}

func (r redactHandler) text(s string) string {
	return redact.Userinfo(redact.Text(s, r.secrets))
}

func (r redactHandler) attrs(as []slog.Attr) []slog.Attr {
	out := make([]slog.Attr, len(as))
	for i, a := range as {
		out[i] = r.attr(a)
	}
	return out
}

func (r redactHandler) attr(a slog.Attr) slog.Attr {
	a.Key = r.text(a.Key)
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		a.Value = slog.StringValue(r.text(v.String()))
	case slog.KindGroup:
		a.Value = slog.GroupValue(r.attrs(v.Group())...)
	case slog.KindAny:
		// An error, a Stringer, a struct or a slice: the handler would
		// print it with Error(), String() or %v (JSON: its marshalled
		// form, built from the same fields). When that text holds a
		// secret, the value is replaced by its redacted text.
		var s string
		if err, ok := v.Any().(error); ok {
			s = err.Error()
		} else {
			s = fmt.Sprintf("%+v", v.Any())
		}
		if red := r.text(s); red != s {
			a.Value = slog.StringValue(red)
		} else {
			a.Value = v
		}
	default:
		a.Value = v // numbers, times, durations: no secret text
	}
	return a
}
