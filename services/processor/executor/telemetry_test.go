package executor

import (
	"context"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/services/processor/agent"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// A model call of the agent is an "llm call" span with the provider, the model, the attempts
// and retries and the token usage it reported, spanning the call's latency.
func TestLLMCallSpanCarriesModelAttemptsAndUsage(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	llmSpan(context.Background(), agent.LLMCalled{Step: 3, Provider: "openai", Model: "test-model", InputTokens: 120,
		OutputTokens: 34, CostUSD: 0.002, LatencyMS: 1500, Retries: 1})
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "llm call" {
		t.Fatalf("spans: %v", spans)
	}
	got := map[string]any{}
	for _, kv := range spans[0].Attributes() {
		got[string(kv.Key)] = kv.Value.AsInterface()
	}
	want := map[string]any{attrLLMProvider: "openai", attrLLMModel: "test-model", attrLLMAttempts: int64(2), attrLLMRetries: int64(1),
		attrLLMInputTokens: int64(120), attrLLMOutputTokens: int64(34), attrLLMCostUSD: 0.002, attrAgentStep: int64(3)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, got[k], got[k], v)
		}
	}
	if d := spans[0].EndTime().Sub(spans[0].StartTime()); d != 1500*time.Millisecond {
		t.Errorf("span lasts %s, want the call's 1.5 s latency", d)
	}
}
