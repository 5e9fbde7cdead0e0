// Package logging configures slog for every ticketflow process.
package logging

import (
	"context"
	"io"
	"log/slog"
	"os"
	"strings"

	"go.opentelemetry.io/otel/trace"
)

// Setup installs a default slog logger. TICKETFLOW_LOG_FORMAT=json gives JSON lines (what
// Kubernetes log collectors want); anything else gives text. TICKETFLOW_LOG_LEVEL=debug|info|warn|error.
// Records logged with a context (InfoContext, …) carrying a span get its trace_id and span_id.
func Setup() *slog.Logger {
	l := New(os.Stderr, os.Getenv("TICKETFLOW_LOG_FORMAT"), os.Getenv("TICKETFLOW_LOG_LEVEL"))
	slog.SetDefault(l)
	return l
}

// New is the logger Setup installs, writing to w in format ("json" or text) at level.
func New(w io.Writer, format, level string) *slog.Logger {
	lvl := slog.LevelInfo
	_ = lvl.UnmarshalText([]byte(level))
	opts := &slog.HandlerOptions{Level: lvl}
	var h slog.Handler = slog.NewTextHandler(w, opts)
	if strings.EqualFold(format, "json") {
		h = slog.NewJSONHandler(w, opts)
	}
	return slog.New(TraceHandler{h})
}

// TraceHandler adds trace_id and span_id from the record's context to every record, so a log
// line leads to its trace and back.
type TraceHandler struct{ slog.Handler }

// Handle implements slog.Handler.
func (h TraceHandler) Handle(ctx context.Context, r slog.Record) error {
	if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
		r = r.Clone()
		r.AddAttrs(slog.String("trace_id", sc.TraceID().String()), slog.String("span_id", sc.SpanID().String()))
	}
	return h.Handler.Handle(ctx, r)
}

// WithAttrs implements slog.Handler.
func (h TraceHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return TraceHandler{h.Handler.WithAttrs(attrs)}
}

// WithGroup implements slog.Handler.
func (h TraceHandler) WithGroup(name string) slog.Handler {
	return TraceHandler{h.Handler.WithGroup(name)}
}
