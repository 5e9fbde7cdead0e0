package notifier

import (
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/notifier/app"
)

// The coding agent's tool and model calls reach a late joiner in the replay, in log order
// with the log lines around them (from memory and from Kafka), then live.
func TestAgentCallsReplayLikeLogs(t *testing.T) {
	e := newTestEnv(t, 2)
	e.eachHistory(t, func(t *testing.T, srv *testServer) {
		ticket := newTicketID("agent")
		e.append(created(ticket, "bob"))
		run := runEvents(ticket, "run-1", "bob")[:2] // requested, started
		run = append(run,
			events.MustNew(ticket, "run-1", "processor", &events.LogEmittedData{Level: "INFO", Message: "agent starts", Step: "call_llm"}),
			events.MustNew(ticket, "run-1", "processor", &events.LLMCallCompletedData{Iteration: 1, AgentStep: 1, Provider: "demo", Model: "demo"}),
			events.MustNew(ticket, "run-1", "processor", &events.AgentToolCalledData{Iteration: 1, AgentStep: 1, Tool: "search", Arguments: `{"pattern":"x"}`, Result: "no matches", OK: true}),
			events.MustNew(ticket, "run-1", "processor", &events.LogEmittedData{Level: "INFO", Message: "after the tool", Step: "call_llm"}))
		e.append(run...)

		c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("bob", "user")})
		got := readUntil(t, c, app.TypeReplayComplete)
		if ids, want := eventIDs(got), envIDs(run); !equal(ids, want) {
			t.Fatalf("replayed %v, want %v", ids, want)
		}
		var types []string
		for _, m := range got[len(got)-5 : len(got)-1] {
			types = append(types, m.Type)
		}
		if want := []string{app.TypeLog, app.TypeLLMCall, app.TypeAgentTool, app.TypeLog}; !equal(types, want) {
			t.Errorf("replayed types %v, want %v", types, want)
		}
		live := events.MustNew(ticket, "run-1", "processor", &events.AgentToolCalledData{Iteration: 1, AgentStep: 2, Tool: "run_ci", Arguments: "{}", Result: "CI passed", OK: true})
		e.append(live)
		if m, err := c.read(5 * time.Second); err != nil || m.Type != app.TypeAgentTool || m.EventID != live.ID {
			t.Fatalf("live: %s (%v), want the agent_tool %s", m.raw, err, live.ID)
		}
	})
}
