package telemetry

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// With OTEL_EXPORTER_OTLP_ENDPOINT set, spans are exported over OTLP/HTTP, and shutdown
// flushes what is still buffered.
func TestSetupExportsToTheOTLPEndpointAndShutdownFlushes(t *testing.T) {
	var mu sync.Mutex
	var posts []string
	var bodies int
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		mu.Lock()
		posts = append(posts, r.Method+" "+r.URL.Path)
		bodies += len(b)
		mu.Unlock()
		w.Header().Set("Content-Type", "application/x-protobuf")
	}))
	defer srv.Close()
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", srv.URL)
	t.Setenv("OTEL_SDK_DISABLED", "")
	prev := otel.GetTracerProvider()
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	shutdown, err := Setup(context.Background(), "test-service")
	if err != nil {
		t.Fatal(err)
	}
	ctx, span := Tracer().Start(context.Background(), "work")
	if TraceID(ctx) == "" || !span.SpanContext().IsSampled() {
		t.Fatal("an enabled provider records sampled spans")
	}
	span.End()
	if err := shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(posts) == 0 || posts[0] != "POST /v1/traces" || bodies == 0 {
		t.Fatalf("OTLP receiver got %v (%d bytes)", posts, bodies)
	}
}

// Without an endpoint nothing is installed: the process keeps the no-op provider (or the one
// a test put in place), and a propagated context still carries its trace id.
func TestSetupWithoutEndpointLeavesTheProvider(t *testing.T) {
	t.Setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "")
	t.Setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "")
	mine := noop.NewTracerProvider()
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(mine)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })
	shutdown, err := Setup(context.Background(), "test-service")
	if err != nil {
		t.Fatal(err)
	}
	defer shutdown(context.Background())
	if otel.GetTracerProvider() != trace.TracerProvider(mine) {
		t.Error("Setup replaced the provider without an endpoint")
	}
	if Enabled() {
		t.Error("Enabled without an endpoint")
	}
	tid, _ := trace.TraceIDFromHex("4bf92f3577b34da6a3ce929d0e0e4736")
	sid, _ := trace.SpanIDFromHex("00f067aa0ba902b7")
	ctx := trace.ContextWithRemoteSpanContext(context.Background(), trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: trace.FlagsSampled}))
	ctx, span := Tracer().Start(ctx, "child")
	defer span.End()
	if TraceID(ctx) != tid.String() {
		t.Errorf("trace id through the no-op provider = %q", TraceID(ctx))
	}
}
