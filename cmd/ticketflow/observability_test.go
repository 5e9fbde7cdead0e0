package main

// The observability end-to-end test: `ticketflow dev` in this process (so its spans reach an
// in-memory recorder installed as the global tracer provider, which telemetry.Setup leaves
// alone without OTEL_EXPORTER_OTLP_ENDPOINT), the embedded Kafka broker over TCP, a real
// PostgreSQL database, the real executor on a local repository with the demo LLM and the CI
// in its sandbox. One run must be one trace from the start request to the socket delivery of
// its terminal event, and /metrics must expose every name the dashboard and alerts use.

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/gittest"
	"github.com/ticketflow/ticketflow/libs/goldentest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/libs/proctest"
	"github.com/ticketflow/ticketflow/libs/sandboxtest"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
)

var updateMetricNames = flag.Bool("update", false, "rewrite deploy/observability/metric-names.txt from the scrape")

const metricNamesFile = "../../deploy/observability/metric-names.txt"

func TestOneRunIsOneTraceAndEveryDashboardMetricIsScraped(t *testing.T) {
	recorder := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(recorder))
	previous := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(previous); _ = tp.Shutdown(context.Background()) })

	dir := sandboxtest.Dir(t)
	origin := filepath.Join(dir, "origin.git")
	gittest.OriginAt(t, origin, map[string]string{"ci.sh": "#!/bin/sh\necho 'ci: step one'\necho 'ci: step two' >&2\necho 'ci: all green'\n"})
	httpAddr := proctest.FreeAddr(t)
	for k, v := range map[string]string{
		"TICKETFLOW_HTTP_ADDR": httpAddr, "TICKETFLOW_EMBEDDED_KAFKA_ADDR": proctest.FreeAddr(t),
		"TICKETFLOW_DATA_DIR": t.TempDir(), "DATABASE_URL": pgtest.NewDatabase(t), "TICKETFLOW_JWT_SECRET": testSecret,
		"TICKETFLOW_EXECUTOR": "real", "TICKETFLOW_WORK_DIR": filepath.Join(dir, "work"), "TICKETFLOW_FILE_REPO_ROOT": dir,
		"TICKETFLOW_LLM_PROVIDER": "demo", "ANTHROPIC_API_KEY": "", "OPENAI_API_KEY": "",
		"TICKETFLOW_WEB_DIR": t.TempDir(), "KAFKA_BROKERS": "", "KAFKA_PARTITIONS": "4", "TICKETFLOW_DEMO": "false",
		"TICKETFLOW_INSTANCE_ID": "dev", "TICKETFLOW_TRACE_UI_URL": "http://localhost:16686/trace/{trace_id}",
		"OTEL_EXPORTER_OTLP_ENDPOINT": "", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "",
	} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	devCtx, stopDev := context.WithCancel(ctx)
	devErr := make(chan error, 1)
	go func() { devErr <- runDevUntil(devCtx) }()
	t.Cleanup(func() {
		stopDev()
		proctest.Returned(t, devErr, 30*time.Second, "ticketflow dev")
	})
	waitHTTPReady(t, ctx, "http://"+httpAddr+"/readyz", devErr)

	v, _ := auth.NewVerifier(testSecret)
	token, _ := v.Issue("alice", auth.RoleUser, time.Hour)
	s := &stack{t: t, http: httpAddr, token: token}
	id, c := s.startRun(ctx, map[string]any{"title": "traced run", "repository_url": "file://" + origin,
		"base_branch": "main", "ci_command": "./ci.sh"})
	msgs := readUntil(t, ctx, c, terminal)
	if last := msgs[len(msgs)-1]; last.Status != "COMPLETED" {
		t.Fatalf("terminal = %+v", last)
	}

	t.Run("trace", func(t *testing.T) {
		var delivered []sdktrace.ReadOnlySpan
		// The run's span ends after its terminal event is appended, maybe after its delivery.
		waitFor(t, func() bool {
			ended := recorder.Ended()
			delivered = spansNamed(ended, "notifier deliver RunCompleted")
			return len(delivered) > 0 && len(spansNamed(ended, "processor run")) > 0
		})
		spans := recorder.Ended()
		tr := newTraceIndex(spans)
		starts := spansNamed(spans, "/api/tickets/processing/start")
		if len(starts) != 1 || starts[0].SpanKind() != trace.SpanKindServer {
			t.Fatalf("want one server span for the start request, got %d", len(starts))
		}
		start := starts[0]
		traceID := start.SpanContext().TraceID()
		if got := attr(start, "http.status_code"); got.AsInt64() != 202 && got.AsInt64() != 200 {
			t.Errorf("start request span status code = %v", got.String())
		}

		runs := tr.inTrace(traceID, "processor run")
		if len(runs) != 1 {
			t.Fatalf("want the run's span in the start request's trace, got %d (processor run spans in any trace: %d)",
				len(runs), len(spansNamed(spans, "processor run")))
		}
		run := runs[0]
		// request → command's publish → processor's receive → run
		tr.wantChain(t, run, start, "ticket-events receive", "ticket-events publish")
		for _, step := range []string{"check_iterations", "prepare_repository", "load_conversation", "call_llm", "commit_changes", "run_ci", "handle_ci_result"} {
			steps := tr.inTrace(traceID, "step "+step)
			if len(steps) != 1 {
				t.Errorf("step %s: %d spans in the run's trace, want 1", step, len(steps))
				continue
			}
			if p := steps[0].Parent().SpanID(); p != run.SpanContext().SpanID() {
				t.Errorf("step %s: parent %s, want the run span", step, tr.name(p))
			}
			if got := attr(steps[0], "ticketflow.step.outcome").AsString(); got != "ok" {
				t.Errorf("step %s: outcome %q", step, got)
			}
		}
		// The coding agent's model calls (the demo scripts several), each a child of call_llm.
		llmCalls := tr.inTrace(traceID, "llm call")
		if len(llmCalls) == 0 {
			t.Fatal("no llm call span")
		}
		for _, call := range llmCalls {
			if tr.name(call.Parent().SpanID()) != "step call_llm" {
				t.Errorf("llm call parent = %s", tr.name(call.Parent().SpanID()))
			}
			if attr(call, "gen_ai.system").AsString() != "demo" || attr(call, "gen_ai.request.model").AsString() != "demo" {
				t.Errorf("llm call attributes: %v", call.Attributes())
			}
			if attr(call, "ticketflow.llm.attempts").AsInt64() != 1 || attr(call, "ticketflow.llm.retries").AsInt64() != 0 ||
				!hasAttr(call, "gen_ai.usage.input_tokens") || !hasAttr(call, "gen_ai.usage.output_tokens") {
				t.Errorf("llm call attempts/retries/usage: %v", call.Attributes())
			}
		}
		// CI runs under run_ci (and under call_llm when the agent ran it as a tool).
		var ciRuns []sdktrace.ReadOnlySpan
		for _, span := range tr.inTrace(traceID, "ci run") {
			if tr.name(span.Parent().SpanID()) == "step run_ci" {
				ciRuns = append(ciRuns, span)
			}
		}
		if len(ciRuns) != 1 {
			t.Fatalf("ci run spans under step run_ci: %d, want 1", len(ciRuns))
		}
		ci := ciRuns[0]
		if attr(ci, "ticketflow.ci.exit_code").AsInt64() != 0 || attr(ci, "ticketflow.ci.lines").AsInt64() != 3 ||
			attr(ci, "ticketflow.ci.bytes").AsInt64() < int64(len("ci: step one\nci: step two\nci: all green")) {
			t.Errorf("ci run attributes: %v", ci.Attributes())
		}
		gitUnderPrepare := 0
		for _, s := range tr.inTraceWithPrefix(traceID, "git ") {
			if tr.name(s.Parent().SpanID()) == "step prepare_repository" {
				gitUnderPrepare++
			}
		}
		if gitUnderPrepare == 0 {
			t.Error("no git span under step prepare_repository")
		}
		// The terminal event: appended by the processor within the run's span, delivered by the
		// notifier in the same trace.
		var deliver sdktrace.ReadOnlySpan
		for _, d := range delivered {
			if d.SpanContext().TraceID() == traceID {
				deliver = d
			}
		}
		if deliver == nil {
			t.Fatalf("the terminal event's delivery is not in the run's trace (%d deliveries elsewhere)", len(delivered))
		}
		tr.wantChain(t, deliver, run, "ticket-events receive", "ticket-events publish")
		if attr(deliver, "ticketflow.notifier.sessions").AsInt64() < 1 {
			t.Errorf("terminal event handed to %v sockets", attr(deliver, "ticketflow.notifier.sessions").String())
		}
		if len(tr.inTrace(traceID, "projector batch")) == 0 {
			t.Error("no projector batch span in the run's trace")
		}

		// The run shows its trace id, and the session the viewer to link it to.
		var listed struct {
			Runs []struct {
				TraceID string `json:"trace_id"`
			} `json:"runs"`
		}
		if code := s.do("GET", "/api/tickets/"+id+"/runs", nil, &listed); code != 200 || len(listed.Runs) != 1 || listed.Runs[0].TraceID != traceID.String() {
			t.Errorf("runs: %d %+v, want trace_id %s", code, listed, traceID)
		}
		var me struct {
			TraceUIURL string `json:"trace_ui_url"`
		}
		if s.do("GET", "/api/me", nil, &me); me.TraceUIURL != "http://localhost:16686/trace/{trace_id}" {
			t.Errorf("me.trace_ui_url = %q", me.TraceUIURL)
		}
	})

	t.Run("metrics", func(t *testing.T) {
		// The run's last writes (the projector's batch, the notifier's delivery) may still be
		// in flight: the histograms and the lag gauge appear once they are done.
		var names []string
		waitFor(t, func() bool {
			names = scrapedNames(t, "http://"+httpAddr+"/metrics")
			return slices.Contains(names, "ticketflow_kafka_consumer_lag") && slices.Contains(names, "ticketflow_run_duration_seconds") &&
				slices.Contains(names, "ticketflow_llm_tokens_total")
		})
		sort.Strings(names)
		want := "# Generated by cmd/ticketflow's TestOneRunIsOneTraceAndEveryDashboardMetricIsScraped (go test -run\n" +
			"# TestOneRunIsOneTraceAndEveryDashboardMetricIsScraped -update): every ticketflow_* metric a\n" +
			"# scrape of `ticketflow dev` exposes after a run. The dashboard and alert tests in deploy/\n" +
			"# read it.\n" +
			strings.Join(names, "\n") + "\n"
		goldentest.Check(t, metricNamesFile, want, *updateMetricNames,
			"go test -run TestOneRunIsOneTraceAndEveryDashboardMetricIsScraped -update, then check the dashboard and alerts")
	})
}

// waitHTTPReady polls url until it answers 200, failing when the stack stops first.
func waitHTTPReady(t *testing.T, ctx context.Context, url string, stopped <-chan error) {
	t.Helper()
	for {
		if resp, err := http.Get(url); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		select {
		case err := <-stopped:
			t.Fatalf("ticketflow dev stopped before ready: %v", err)
		case <-ctx.Done():
			t.Fatal("ticketflow dev not ready in time")
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// scrapedNames are the ticketflow_* metric families /metrics exposes.
func scrapedNames(t *testing.T, url string) []string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var buf bytes.Buffer
	if _, err := buf.ReadFrom(resp.Body); err != nil {
		t.Fatal(err)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(&buf)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	var names []string
	for name := range families {
		// kprom registers its error and disconnect counters per broker on the first one: whether
		// a run saw any is chance, so they are not part of the expected set.
		if strings.HasPrefix(name, "ticketflow_") && !onlyAfterAnError(name) {
			names = append(names, name)
		}
	}
	return names
}

func onlyAfterAnError(name string) bool {
	return strings.HasPrefix(name, "ticketflow_kafka_") && (strings.HasSuffix(name, "_errors_total") || strings.HasSuffix(name, "_disconnects_total"))
}

// traceIndex finds spans by id.
type traceIndex map[trace.SpanID]sdktrace.ReadOnlySpan

func newTraceIndex(spans []sdktrace.ReadOnlySpan) traceIndex {
	idx := traceIndex{}
	for _, s := range spans {
		idx[s.SpanContext().SpanID()] = s
	}
	return idx
}

func (idx traceIndex) name(id trace.SpanID) string {
	if s, ok := idx[id]; ok {
		return s.Name()
	}
	return fmt.Sprintf("<span %s not recorded>", id)
}

func (idx traceIndex) inTrace(id trace.TraceID, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range idx {
		if s.SpanContext().TraceID() == id && s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func (idx traceIndex) inTraceWithPrefix(id trace.TraceID, prefix string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range idx {
		if s.SpanContext().TraceID() == id && strings.HasPrefix(s.Name(), prefix) {
			out = append(out, s)
		}
	}
	return out
}

// wantChain checks that ancestor is an ancestor of s and that the spans between them include
// the names in via, nearest first (other spans may sit between).
func (idx traceIndex) wantChain(t *testing.T, s, ancestor sdktrace.ReadOnlySpan, via ...string) {
	t.Helper()
	var path []string
	for cur := s; ; {
		parent := cur.Parent().SpanID()
		if !parent.IsValid() {
			t.Errorf("%s does not descend from %s; its ancestors: %q", s.Name(), ancestor.Name(), path)
			return
		}
		if parent == ancestor.SpanContext().SpanID() {
			break
		}
		p, ok := idx[parent]
		if !ok {
			t.Errorf("%s: ancestor %s not recorded (ancestors so far %q)", s.Name(), parent, path)
			return
		}
		path = append(path, p.Name())
		cur = p
	}
	rest := path
	for _, name := range via {
		i := slices.Index(rest, name)
		if i < 0 {
			t.Errorf("%s → %s: no %q on the way (path %q)", s.Name(), ancestor.Name(), name, path)
			return
		}
		rest = rest[i+1:]
	}
}

func spansNamed(spans []sdktrace.ReadOnlySpan, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range spans {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attr(s sdktrace.ReadOnlySpan, key string) attribute.Value {
	for _, kv := range s.Attributes() {
		if string(kv.Key) == key {
			return kv.Value
		}
	}
	return attribute.Value{}
}

func hasAttr(s sdktrace.ReadOnlySpan, key string) bool {
	return attr(s, key).Type() != attribute.EMPTY
}
