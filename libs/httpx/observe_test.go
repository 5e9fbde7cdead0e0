package httpx

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/logging"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/propagation"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

// Every request gets a server span continuing the caller's traceparent, RED metrics by route
// template (not path), a trace-id exemplar, and one access log line carrying the trace id.
func TestObservabilitySpansMetricsAndAccessLog(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prevTP, prevProp := otel.GetTracerProvider(), otel.GetTextMapPropagator()
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.TraceContext{})
	t.Cleanup(func() { otel.SetTracerProvider(prevTP); otel.SetTextMapPropagator(prevProp) })

	var logs bytes.Buffer
	log := logging.New(&logs, "json", "info")
	reg := NewRegistry()
	app := NewApp(log, nil, WithObservability("command", reg, log))
	var handlerTrace trace.TraceID
	app.Get("/api/tickets/:id", func(c *fiber.Ctx) error {
		handlerTrace = trace.SpanContextFromContext(c.UserContext()).TraceID()
		if c.Params("id") == "missing" {
			return fiber.NewError(fiber.StatusNotFound, "no such ticket")
		}
		if c.Params("id") == "broken" {
			return errors.New("boom")
		}
		return c.SendString("ok")
	})
	MountOps(app, reg, nil)

	const parent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	for _, id := range []string{"t-1", "t-2", "missing", "broken"} {
		req := httptest.NewRequest("GET", "/api/tickets/"+id+"?access_token=secret-token", nil)
		req.Header.Set("traceparent", parent)
		resp, err := app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	if handlerTrace.String() != "4bf92f3577b34da6a3ce929d0e0e4736" {
		t.Errorf("handler context trace = %s, want the caller's", handlerTrace)
	}
	spans := rec.Ended()
	if len(spans) != 4 {
		t.Fatalf("%d spans, want 4", len(spans))
	}
	for _, s := range spans {
		for _, kv := range s.Attributes() {
			if strings.Contains(kv.Value.String(), "secret-token") {
				t.Errorf("span attribute %s = %q carries the query's credential", kv.Key, kv.Value.String())
			}
		}
		if s.Name() != "/api/tickets/:id" || s.SpanKind() != trace.SpanKindServer || s.Parent().SpanID().String() != "00f067aa0ba902b7" {
			t.Errorf("span %q kind %v parent %s", s.Name(), s.SpanKind(), s.Parent().SpanID())
		}
	}

	want := map[string]float64{"200": 2, "404": 1, "500": 1}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]float64{}
	exemplars := 0
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["route"] != "/api/tickets/:id" || labels["service"] != "command" {
				continue
			}
			switch mf.GetName() {
			case "ticketflow_http_requests_total":
				seen[labels["status"]] += m.GetCounter().GetValue()
			case "ticketflow_http_request_duration_seconds":
				for _, b := range m.GetHistogram().GetBucket() {
					if e := b.GetExemplar(); e != nil && e.GetLabel()[0].GetValue() == "4bf92f3577b34da6a3ce929d0e0e4736" {
						exemplars++
					}
				}
			}
		}
	}
	for status, n := range want {
		if seen[status] != n {
			t.Errorf("requests with status %s: %v, want %v (all: %v)", status, seen[status], n, seen)
		}
	}
	if exemplars == 0 {
		t.Error("no duration bucket carries the trace id as exemplar")
	}

	// Exemplars reach a scraper that asks for OpenMetrics.
	req := httptest.NewRequest("GET", "/metrics", nil)
	req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	if !strings.Contains(string(body), `# {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"}`) {
		t.Errorf("OpenMetrics scrape has no exemplar:\n%.2000s", body)
	}

	var access []map[string]any
	for _, line := range bytes.Split(bytes.TrimSpace(logs.Bytes()), []byte("\n")) {
		var m map[string]any
		if err := json.Unmarshal(line, &m); err != nil {
			t.Fatalf("log line %q: %v", line, err)
		}
		if m["msg"] == "http request" {
			access = append(access, m)
		}
	}
	if len(access) != 4 {
		t.Fatalf("%d access lines at info, want 4 (the scrape logs at debug): %s", len(access), logs.String())
	}
	last := access[3]
	if last["route"] != "/api/tickets/:id" || last["method"] != "GET" || last["status"] != float64(500) ||
		last["trace_id"] != "4bf92f3577b34da6a3ce929d0e0e4736" || last["duration_ms"] == nil {
		t.Errorf("access line: %v", last)
	}
}

// Registering the HTTP metrics twice on one registry (two apps of a process) shares them.
func TestObservabilityTwiceOnOneRegistry(t *testing.T) {
	reg := prometheus.NewRegistry()
	a, b := newHTTPMetrics(reg), newHTTPMetrics(reg)
	if a.requests != b.requests {
		t.Error("second registration made a second counter")
	}
}
