package ports_test

import (
	"context"
	"encoding/json"
	"net/url"
	"testing"
	"time"
)

// The run API and /api/analytics/llm carry what the coding agent cost, in the documented
// shapes (raw validates every answer against api/openapi.yaml).
func TestLLMCostInRunsAndAnalytics(t *testing.T) {
	e := newEnv(t)
	ticket := e.Create(e.Alice, `{"title":"cost","repository_url":"https://github.com/a/b.git"}`)
	run := e.StartProjected(e.Alice, ticket)
	ctx := context.Background()
	if _, err := e.DB.Exec(ctx, `INSERT INTO llm_calls (event_id, run_id, ticket_id, iteration, agent_step, provider, model, input_tokens,
			output_tokens, cost_usd, latency_ms, retries, occurred_at) VALUES ('e1', $1, $2, 1, 1, 'anthropic', 'claude-sonnet-4-5', 1000, 100, 0.0045, 800, 0, now())`,
		run, ticket); err != nil {
		t.Fatal(err)
	}
	if _, err := e.DB.Exec(ctx, `UPDATE runs SET llm_calls = 1, llm_input_tokens = 1000, llm_output_tokens = 100, llm_cost_usd = 0.0045, tool_calls = 2 WHERE id = $1`, run); err != nil {
		t.Fatal(err)
	}
	status, _, body := raw(e, e.Alice, "/api/tickets/"+ticket+"/runs")
	var runs struct {
		Runs []struct {
			LLMCostUSD float64 `json:"llm_cost_usd"`
			ToolCalls  int     `json:"tool_calls"`
		} `json:"runs"`
	}
	if err := json.Unmarshal([]byte(body), &runs); status != 200 || err != nil || len(runs.Runs) != 1 || runs.Runs[0].LLMCostUSD != 0.0045 || runs.Runs[0].ToolCalls != 2 {
		t.Errorf("runs: %d %s", status, body)
	}
	if status, _, body := raw(e, e.Alice, "/api/tickets/"+ticket); status != 200 {
		t.Errorf("ticket: %d %s", status, body)
	}
	since := url.QueryEscape(time.Now().Add(-time.Hour).UTC().Format(time.RFC3339))
	status, _, body = raw(e, e.Alice, "/api/analytics/llm?since="+since)
	var stats struct {
		Models []struct {
			Provider string  `json:"provider"`
			CostUSD  float64 `json:"cost_usd"`
		} `json:"models"`
		Daily []any `json:"daily"`
	}
	if err := json.Unmarshal([]byte(body), &stats); status != 200 || err != nil || len(stats.Models) != 1 || stats.Models[0].Provider != "anthropic" ||
		stats.Models[0].CostUSD != 0.0045 || len(stats.Daily) != 1 {
		t.Errorf("analytics: %d %s", status, body)
	}
	if status, _, _ := raw(e, e.Alice, "/api/analytics/llm?since=yesterday"); status != 422 {
		t.Errorf("a bad since: %d", status)
	}
}
