package logging

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"

	"go.opentelemetry.io/otel/trace"
)

func TestJSONLinesCarryTheSpanOfTheirContext(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "json", "info").With("service", "test").WithGroup("g")
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	log.InfoContext(ctx, "with span", "k", "v")
	log.InfoContext(context.Background(), "without span")

	lines := bytes.Split(bytes.TrimSpace(buf.Bytes()), []byte("\n"))
	if len(lines) != 2 {
		t.Fatalf("want 2 lines, got %q", buf.String())
	}
	var with, without map[string]any
	if err := json.Unmarshal(lines[0], &with); err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(lines[1], &without); err != nil {
		t.Fatal(err)
	}
	g, _ := with["g"].(map[string]any)
	if g["trace_id"] != tid.String() || g["span_id"] != sid.String() || g["k"] != "v" || with["service"] != "test" {
		t.Errorf("line with a span: %s", lines[0])
	}
	if _, ok := without["g"]; ok {
		t.Errorf("line without a span has trace fields: %s", lines[1])
	}
	if bytes.Contains(lines[1], []byte("trace_id")) {
		t.Errorf("line without a span has a trace id: %s", lines[1])
	}
}

func TestLevelAndTextFormat(t *testing.T) {
	var buf bytes.Buffer
	log := New(&buf, "", "warn")
	log.Info("hidden")
	log.Warn("shown")
	if bytes.Contains(buf.Bytes(), []byte("hidden")) || !bytes.Contains(buf.Bytes(), []byte("msg=shown")) {
		t.Errorf("text log at warn: %q", buf.String())
	}
}
