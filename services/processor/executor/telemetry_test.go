package executor

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/services/processor/llm"
	"github.com/ticketflow/ticketflow/services/processor/redact"
	"go.opentelemetry.io/otel"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
)

// An LLM call's span tells the provider, the model, how many HTTP attempts it took and the
// token usage the provider reported, read off the real HTTP exchange.
func TestLLMCallSpanCarriesModelAttemptsAndUsage(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSpanProcessor(rec))
	prev := otel.GetTracerProvider()
	otel.SetTracerProvider(tp)
	t.Cleanup(func() { otel.SetTracerProvider(prev) })

	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			http.Error(w, "overloaded", http.StatusServiceUnavailable) // retried by the llm client
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"choices":[{"message":{"role":"assistant","content":"{\"summary\":\"s\",\"edits\":[]}"}}],` +
			`"usage":{"prompt_tokens":120,"completion_tokens":34,"total_tokens":154}}`))
	}))
	defer srv.Close()
	red := redact.New()
	hc := llm.HTTPConfig{MaxAttempts: 3, Backoff: time.Millisecond, Redactor: red,
		Client: &http.Client{Transport: llmTransport{http.DefaultTransport}}}
	x := &Real{llm: llm.NewOpenAI("", srv.URL, "test-model", hc), red: red}

	text, err := x.complete(context.Background(), llm.Request{Messages: []llm.Message{{Role: "user", Content: "hi"}}})
	if err != nil || text == "" {
		t.Fatalf("complete: %q, %v", text, err)
	}
	spans := rec.Ended()
	if len(spans) != 1 || spans[0].Name() != "llm call" {
		t.Fatalf("spans: %v", spans)
	}
	got := map[string]any{}
	for _, kv := range spans[0].Attributes() {
		got[string(kv.Key)] = kv.Value.AsInterface()
	}
	want := map[string]any{attrLLMProvider: "openai", attrLLMModel: "test-model", attrLLMAttempts: int64(2), attrLLMRetries: int64(1),
		attrLLMInputTokens: int64(120), attrLLMOutputTokens: int64(34)}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %v (%T), want %v", k, got[k], got[k], v)
		}
	}
}
