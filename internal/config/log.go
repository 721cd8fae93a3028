package config

import (
	"context"
	"io"
	"log/slog"

	"github.com/ffpipe/ffpipe/internal/secret"
)

// NewLogger returns the app's logger: JSON or text per FFPIPE_LOG_FORMAT, at
// FFPIPE_LOG_LEVEL, with every string attribute and message redacted.
func NewLogger(c Config, w io.Writer) *slog.Logger {
	var level slog.Level
	switch c.LogLevel {
	case "debug":
		level = slog.LevelDebug
	case "warn":
		level = slog.LevelWarn
	case "error":
		level = slog.LevelError
	default:
		level = slog.LevelInfo
	}
	opts := &slog.HandlerOptions{Level: level, ReplaceAttr: redactAttr}
	var h slog.Handler
	if c.LogFormat == "text" {
		h = slog.NewTextHandler(w, opts)
	} else {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(redactHandler{h})
}

func redactAttr(_ []string, a slog.Attr) slog.Attr {
	switch a.Value.Kind() {
	case slog.KindString:
		if r := secret.Redact(a.Value.String()); r != a.Value.String() {
			return slog.String(a.Key, r)
		}
	case slog.KindAny:
		if err, ok := a.Value.Any().(error); ok {
			return slog.String(a.Key, secret.Redact(err.Error()))
		}
	}
	return a
}

// redactHandler redacts the record message; attributes go through
// ReplaceAttr.
type redactHandler struct{ slog.Handler }

func (h redactHandler) Handle(ctx context.Context, r slog.Record) error {
	if red := secret.Redact(r.Message); red != r.Message {
		nr := slog.NewRecord(r.Time, r.Level, red, r.PC)
		r.Attrs(func(a slog.Attr) bool { nr.AddAttrs(a); return true })
		r = nr
	}
	return h.Handler.Handle(ctx, r)
}

func (h redactHandler) WithAttrs(as []slog.Attr) slog.Handler {
	return redactHandler{h.Handler.WithAttrs(as)}
}

func (h redactHandler) WithGroup(name string) slog.Handler {
	return redactHandler{h.Handler.WithGroup(name)}
}
