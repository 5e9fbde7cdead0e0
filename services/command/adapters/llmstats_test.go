package adapters

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
)

// The LLM analytics sum llm_calls by provider and model, in all and per UTC day, within the
// window; a ticket's and a run's totals come from the runs projection.
func TestLLMStatsAndRunTotals(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	db := pgtest.NewPool(t)
	day1 := time.Date(2026, 3, 1, 10, 0, 0, 0, time.UTC)
	day2 := day1.Add(24 * time.Hour)
	for _, q := range []string{
		`INSERT INTO tickets (id, title, owner, created_at, updated_at, last_partition, last_offset) VALUES ('t1', 'T', 'alice', now(), now(), 0, 0)`,
		`INSERT INTO runs (id, ticket_id, status, requested_at, llm_calls, llm_input_tokens, llm_output_tokens, llm_cost_usd, tool_calls)
			VALUES ('r1', 't1', 'COMPLETED', now(), 3, 4000, 300, 0.0165, 5), ('r2', 't1', 'FAILED', now() - interval '1 hour', 1, 100, 10, 0.00045, 1)`,
	} {
		if _, err := db.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	for i, c := range []struct {
		provider, model string
		in, out         int64
		cost            float64
		at              time.Time
	}{
		{"anthropic", "claude-sonnet-4-5", 1000, 100, 0.0045, day1},
		{"anthropic", "claude-sonnet-4-5", 3000, 200, 0.012, day2},
		{"openai", "gpt-4o-mini", 100, 10, 0.00045, day2},
		{"openai", "gpt-4o-mini", 999, 9, 1, day2.Add(48 * time.Hour)}, // outside the window
	} {
		if _, err := db.Exec(ctx, `INSERT INTO llm_calls (event_id, run_id, ticket_id, iteration, agent_step, provider, model, input_tokens,
				output_tokens, cost_usd, latency_ms, retries, occurred_at) VALUES ($1, 'r1', 't1', 1, $2, $3, $4, $5, $6, $7, 100, 1, $8)`,
			"e"+string(rune('a'+i)), i+1, c.provider, c.model, c.in, c.out, c.cost, c.at); err != nil {
			t.Fatal(err)
		}
	}
	s := NewStore(db, "ticket-events", 5*time.Second, nil)
	models, daily, err := s.LLMStats(ctx, day1.Add(-time.Hour), day2.Add(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(models) != 2 || models[0].Model != "claude-sonnet-4-5" || models[0].Calls != 2 || models[0].InputTokens != 4000 ||
		models[0].OutputTokens != 300 || math.Abs(models[0].CostUSD-0.0165) > 1e-12 || models[0].Retries != 2 || models[1].Calls != 1 {
		t.Errorf("models %+v", models)
	}
	if len(daily) != 3 || daily[0].Day != "2026-03-01" || daily[1].Day != "2026-03-02" || daily[1].Provider != "anthropic" || daily[2].Model != "gpt-4o-mini" {
		t.Errorf("daily %+v", daily)
	}
	runs, err := s.Runs(ctx, "t1")
	if err != nil || len(runs) != 2 || runs[0].LLMCalls != 3 || runs[0].ToolCalls != 5 || runs[0].LLMInputTokens != 4000 || math.Abs(runs[0].LLMCostUSD-0.0165) > 1e-12 {
		t.Errorf("runs %+v %v", runs, err)
	}
	tk, err := s.Ticket(ctx, "t1")
	if err != nil || tk.LLMInputTokens != 4100 || tk.LLMOutputTokens != 310 || math.Abs(tk.LLMCostUSD-0.01695) > 1e-12 {
		t.Errorf("ticket totals %d/%d $%f %v", tk.LLMInputTokens, tk.LLMOutputTokens, tk.LLMCostUSD, err)
	}
}
