package executor

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ticketflow/ticketflow/services/processor/agent"
)

// Every LLM call adds its tokens (by direction) and cost to the ticketflow_llm_* counters.
func TestLLMMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := newLLMMetrics(reg)
	m.observe(agent.LLMCalled{Provider: "anthropic", Model: "claude-x", InputTokens: 1000, OutputTokens: 50, CostUSD: 0.25})
	m.observe(agent.LLMCalled{Provider: "anthropic", Model: "claude-x", InputTokens: 500, OutputTokens: 5, CostUSD: 0.5})
	if v := testutil.ToFloat64(m.tokens.WithLabelValues("anthropic", "claude-x", "input")); v != 1500 {
		t.Errorf("input tokens %v", v)
	}
	if v := testutil.ToFloat64(m.tokens.WithLabelValues("anthropic", "claude-x", "output")); v != 55 {
		t.Errorf("output tokens %v", v)
	}
	if v := testutil.ToFloat64(m.cost.WithLabelValues("anthropic", "claude-x")); v != 0.75 {
		t.Errorf("cost %v", v)
	}
	if n, err := testutil.GatherAndCount(reg, "ticketflow_llm_tokens_total", "ticketflow_llm_cost_usd_total"); err != nil || n != 3 {
		t.Errorf("%d series (%v), want 3", n, err)
	}
}
