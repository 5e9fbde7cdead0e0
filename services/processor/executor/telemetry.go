package executor

import (
	"context"
	"time"

	"github.com/ticketflow/ticketflow/libs/telemetry"
	"github.com/ticketflow/ticketflow/services/processor/agent"
	"github.com/ticketflow/ticketflow/services/processor/ci"
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
	attrLLMCostUSD      = "ticketflow.llm.cost_usd"
	attrAgentStep       = "ticketflow.agent.step"
)

// llmSpan records one model call of the coding agent as an "llm call" span, from the call's
// start (now minus its latency) to now, with what the provider reported: attempts (retries
// + 1), retries and token usage.
func llmSpan(ctx context.Context, c agent.LLMCalled) {
	end := time.Now()
	_, span := telemetry.Tracer().Start(ctx, "llm call", trace.WithSpanKind(trace.SpanKindClient),
		trace.WithTimestamp(end.Add(-time.Duration(c.LatencyMS)*time.Millisecond)),
		trace.WithAttributes(attribute.String(attrLLMProvider, c.Provider), attribute.String(attrLLMModel, c.Model),
			attribute.Int(attrLLMAttempts, c.Retries+1), attribute.Int(attrLLMRetries, c.Retries),
			attribute.Int64(attrLLMInputTokens, c.InputTokens), attribute.Int64(attrLLMOutputTokens, c.OutputTokens),
			attribute.Float64(attrLLMCostUSD, c.CostUSD), attribute.Int(attrAgentStep, c.Step)))
	span.End(trace.WithTimestamp(end))
}

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
