package adapters

import (
	"math"
	"testing"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/projector/app"
)

// LLMCallCompleted events become llm_calls rows and add up on their run, once per event id;
// AgentToolCalled events count on the run.
func TestLLMCallsAddUpOnTheirRun(t *testing.T) {
	ctx, s, db := testStore(t)
	ev := func(p events.Payload) events.Event { return processorEvent("r1", p) }
	first := ev(&events.LLMCallCompletedData{Iteration: 1, AgentStep: 1, Provider: "anthropic", Model: "claude-x", InputTokens: 1000, OutputTokens: 100, CostUSD: 0.0045, LatencyMS: 900, Retries: 1})
	second := ev(&events.LLMCallCompletedData{Iteration: 1, AgentStep: 2, Provider: "anthropic", Model: "claude-x", InputTokens: 2000, OutputTokens: 50, CostUSD: 0.00675, LatencyMS: 700})
	err := s.InBatch(ctx, 0, func(b app.Batch) error {
		if err := b.RequestRun(ctx, ev(&events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"}), &events.ProcessingRequestedData{RequestedBy: "alice"}, "pending", ""); err != nil {
			return err
		}
		for _, e := range []events.Event{first, second, first} { // the last one is a redelivery
			p, _ := e.Decode()
			if err := b.RecordLLMCall(ctx, e, p.(*events.LLMCallCompletedData)); err != nil {
				return err
			}
		}
		return b.CountToolCall(ctx, ev(&events.AgentToolCalledData{Tool: "search", OK: true}))
	})
	if err != nil {
		t.Fatal(err)
	}
	var calls, tools int
	var in, out int64
	var cost float64
	if err := db.QueryRow(ctx, `SELECT llm_calls, llm_input_tokens, llm_output_tokens, llm_cost_usd, tool_calls FROM runs WHERE id = 'r1'`).
		Scan(&calls, &in, &out, &cost, &tools); err != nil {
		t.Fatal(err)
	}
	if calls != 2 || in != 3000 || out != 150 || math.Abs(cost-0.01125) > 1e-12 || tools != 1 {
		t.Errorf("run totals: %d calls, %d/%d tokens, $%f, %d tool calls", calls, in, out, cost, tools)
	}
	var rows int
	if err := db.QueryRow(ctx, `SELECT count(*) FROM llm_calls WHERE run_id = 'r1'`).Scan(&rows); err != nil || rows != 2 {
		t.Errorf("%d llm_calls rows (%v), want 2", rows, err)
	}
}
