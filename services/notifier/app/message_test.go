package app

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
)

// The processor's LogTruncated and RunResumed reach clients as their own message types with
// every field, besides the common header and cursor.
func TestNewItemMapsTruncationAndHandover(t *testing.T) {
	for _, tc := range []struct {
		payload events.Payload
		typ     string
		fields  []string
	}{
		{&events.LogTruncatedData{Step: "run_ci", Iteration: 2, LinesTotal: 20000, BytesTotal: 1 << 20, LinesEmitted: 10000, Artifact: "ci-2.log"},
			TypeLogTruncated, []string{"step", "iteration", "lines_total", "bytes_total", "lines_emitted", "artifact"}},
		{&events.RunResumedData{Owner: "p-2", PreviousOwner: "p-1", Step: "run_ci", Attempt: 2, Iteration: 1},
			TypeRunResumed, []string{"owner", "previous_owner", "step", "attempt", "iteration"}},
		{&events.AgentToolCalledData{Iteration: 1, AgentStep: 1, Tool: "search", Arguments: `{"pattern":"x"}`, Result: "no matches", OK: true, DurationMS: 2},
			TypeAgentTool, []string{"iteration", "agent_step", "tool", "arguments", "result", "ok", "duration_ms"}},
		{&events.LLMCallCompletedData{Iteration: 1, AgentStep: 1, Provider: "openai", Model: "gpt-4o-mini", InputTokens: 10, OutputTokens: 5, CostUSD: 0.001, LatencyMS: 50},
			TypeLLMCall, []string{"provider", "model", "input_tokens", "output_tokens", "cost_usd", "latency_ms", "retries"}},
	} {
		env := events.MustNew("t-1", "r-1", "processor", tc.payload)
		env.OccurredAt = time.Now()
		it, ok := newItem(events.Event{Envelope: env, Position: events.Position{Partition: 1, Offset: 7}})
		if !ok {
			t.Fatalf("%s: no client message", tc.typ)
		}
		var m map[string]any
		if err := json.Unmarshal(it.message(), &m); err != nil {
			t.Fatal(err)
		}
		if m["type"] != tc.typ || m["event_id"] != env.ID || m["run_id"] != "r-1" || m["cursor"] == "" {
			t.Errorf("%s: header %v", tc.typ, m)
		}
		for _, f := range tc.fields {
			if _, ok := m[f]; !ok {
				t.Errorf("%s: field %q missing in %s", tc.typ, f, it.message())
			}
		}
	}
}
