package executor

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"sync"

	"github.com/ticketflow/ticketflow/libs/telemetry"
	"github.com/ticketflow/ticketflow/services/processor/ci"
	"github.com/ticketflow/ticketflow/services/processor/llm"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/trace"
)

// Span attributes of an LLM call (OpenTelemetry's gen_ai conventions where they exist).
const (
	attrLLMProvider     = "gen_ai.system"
	attrLLMModel        = "gen_ai.request.model"
	attrLLMInputTokens  = "gen_ai.usage.input_tokens"
	attrLLMOutputTokens = "gen_ai.usage.output_tokens"
	attrLLMAttempts     = "ticketflow.llm.attempts"
	attrLLMRetries      = "ticketflow.llm.retries"
)

// complete is x.llm.Complete inside an "llm call" span: provider, model, the HTTP attempts
// made (retries = attempts − 1) and the token usage the provider reported, all read from
// the HTTP exchanges (llmTransport) so the llm package stays as it is.
func (x *Real) complete(ctx context.Context, req llm.Request) (string, error) {
	provider, model := llmIdentity(x.llm)
	ctx, span := telemetry.Tracer().Start(ctx, "llm call", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithAttributes(attribute.String(attrLLMProvider, provider), attribute.String(attrLLMModel, model),
			attribute.Int("ticketflow.llm.messages", len(req.Messages))))
	defer span.End()
	stats := &llmCallStats{}
	text, err := x.llm.Complete(context.WithValue(ctx, llmStatsKey{}, stats), req)
	attempts, in, out, reported := stats.read()
	span.SetAttributes(attribute.Int(attrLLMAttempts, attempts), attribute.Int(attrLLMRetries, max(attempts-1, 0)))
	if reported {
		span.SetAttributes(attribute.Int64(attrLLMInputTokens, in), attribute.Int64(attrLLMOutputTokens, out))
	}
	telemetry.RecordError(span, x.red.Error(err))
	return text, err
}

// llmIdentity names the provider and model of p.
func llmIdentity(p llm.Provider) (provider, model string) {
	switch v := p.(type) {
	case *llm.Anthropic:
		return "anthropic", v.Model
	case *llm.OpenAI:
		return "openai", v.Model
	case llm.Demo:
		return "demo", "demo"
	}
	return p.Name(), ""
}

type llmStatsKey struct{}

// llmCallStats accumulates what the HTTP attempts of one call saw.
type llmCallStats struct {
	mu            sync.Mutex
	attempts      int
	input, output int64
	reported      bool
}

func (s *llmCallStats) read() (attempts int, input, output int64, reported bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts, s.input, s.output, s.reported
}

// llmTransport counts the HTTP attempts of the call in the request's context and reads the
// usage block of successful answers (Anthropic: input/output_tokens; OpenAI-compatible:
// prompt/completion_tokens), handing the body on unchanged.
type llmTransport struct{ base http.RoundTripper }

// maxUsageBody bounds what is buffered to read the usage (the llm package reads 32 MiB).
const maxUsageBody = 32 << 20

func (t llmTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	stats, _ := req.Context().Value(llmStatsKey{}).(*llmCallStats)
	if stats == nil {
		return resp, err
	}
	stats.mu.Lock()
	stats.attempts++
	stats.mu.Unlock()
	if err != nil || resp.StatusCode/100 != 2 {
		return resp, err
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, maxUsageBody))
	resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(body))
	if rerr != nil {
		resp.Body = io.NopCloser(io.MultiReader(bytes.NewReader(body), errReader{rerr}))
		return resp, nil
	}
	var answer struct {
		Usage *struct {
			InputTokens      int64 `json:"input_tokens"`
			OutputTokens     int64 `json:"output_tokens"`
			PromptTokens     int64 `json:"prompt_tokens"`
			CompletionTokens int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &answer) == nil && answer.Usage != nil {
		u := answer.Usage
		stats.mu.Lock()
		stats.input += u.InputTokens + u.PromptTokens
		stats.output += u.OutputTokens + u.CompletionTokens
		stats.reported = true
		stats.mu.Unlock()
	}
	return resp, nil
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// ciSpan is the span of one CI process: exit code, output lines and bytes are set by end.
func ciSpan(ctx context.Context, command, sandbox string) (context.Context, trace.Span) {
	return telemetry.Tracer().Start(ctx, "ci run", trace.WithAttributes(
		attribute.String("ticketflow.ci.command", command), attribute.String("ticketflow.ci.sandbox", sandbox)))
}

// endCISpan records the CI process's result on span and ends it.
func endCISpan(span trace.Span, res ci.Result, lines, bytes int64, err error) {
	span.SetAttributes(attribute.Int("ticketflow.ci.exit_code", res.ExitCode), attribute.Bool("ticketflow.ci.timed_out", res.TimedOut),
		attribute.Int64("ticketflow.ci.lines", lines), attribute.Int64("ticketflow.ci.bytes", bytes),
		attribute.Float64("ticketflow.ci.duration_seconds", res.Duration.Seconds()))
	telemetry.RecordError(span, err)
	span.End()
}
