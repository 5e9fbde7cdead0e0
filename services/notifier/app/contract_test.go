package app

import (
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/libs/events"
)

// samplePayloads has one payload of every event type, with every field set.
var samplePayloads = []events.Payload{
	&events.TicketCreatedData{Title: "t", Description: "d", RepositoryURL: "https://h/r.git", BaseBranch: "main", CICommand: "make", Owner: "alice", SimulateFailure: "once"},
	&events.ProcessingRequestedData{RequestedBy: "alice", Reason: "start"},
	&events.RunStartedData{Iteration: 1, MaxIterations: 3, Executor: "simulated"},
	&events.StepStartedData{Step: "run_ci", Progress: 85, Message: "CI", Iteration: 1, Attempt: 2},
	&events.StepCompletedData{Step: "run_ci", Progress: 85, Iteration: 1, Attempt: 1, Outcome: "failed", DurationMS: 12, Error: "boom"},
	&events.LogEmittedData{Level: "INFO", Message: "line", Step: "run_ci", Stream: "stdout"},
	&events.LogTruncatedData{Step: "run_ci", Iteration: 1, LinesTotal: 9, BytesTotal: 99, LinesEmitted: 5, Artifact: "ci-1.log"},
	&events.CIResultData{Iteration: 1, Passed: true, ExitCode: 0, DurationMS: 5, OutputTail: "ok"},
	&events.RunCompletedData{Iteration: 1, Branch: "ticketflow/t", Message: "done", LLMInputTokens: 10, LLMOutputTokens: 2, LLMCostUSD: 0.01},
	&events.RunFailedData{Step: "run_ci", Message: "failed", Error: "ci failed", LLMInputTokens: 10, LLMOutputTokens: 2, LLMCostUSD: 0.01},
	&events.RunCancelledData{Step: "call_llm", Message: "cancelled", Reason: "cancelled by alice"},
	&events.RunRejectedData{Reason: "a run is active", ActiveRunID: "r-0"},
	&events.CancelRequestedData{RequestedBy: "alice"},
	&events.ValidationApprovedData{ApprovedBy: "alice", Comment: "lgtm"},
	&events.ChangesRequestedData{RequestedBy: "alice", Comment: "more", NextRunID: "r-2"},
	&events.RunResumedData{Owner: "p-2", PreviousOwner: "p-1", Step: "run_ci", Attempt: 2, Iteration: 1},
	&events.AgentToolCalledData{Iteration: 1, AgentStep: 2, Tool: "read_file", Arguments: `{"path":"a.go"}`, Result: "a.go lines 1-9 of 9", OK: false, Error: "no", DurationMS: 3},
	&events.LLMCallCompletedData{Iteration: 1, AgentStep: 2, Provider: "anthropic", Model: "claude-sonnet-4-5", InputTokens: 1200, OutputTokens: 80, CostUSD: 0.0048, LatencyMS: 900, Retries: 1},
	&events.RepositoryConfigLoadedData{Source: "file", SHA256: "ab12", SizeBytes: 120, Config: events.RepositoryConfig{CICommand: "make test",
		CICommandFrom: "repository", CICommandOverridable: true, CITimeoutMS: 300000, Editable: []string{"src/**"}, MaxSteps: 10, MaxTokens: 5000,
		MaxCostUSD: 0.5, MaxDurationMS: 60000, Notes: []string{"the ticket's CI command is not used"}}},
}

// Every message the notifier makes of an event — per ticket, with the merged cursor of
// /ws/tickets, and as the snapshot after history_unavailable — and every other message it
// sends matches api/asyncapi.yaml's ServerMessage.
func TestMessagesMatchAsyncAPI(t *testing.T) {
	covered := map[events.Type]bool{}
	for _, p := range samplePayloads {
		covered[p.EventType()] = true
		for _, runID := range []string{"r-1", ""} {
			env := events.MustNew("t-1", runID, "alice", p)
			env.OccurredAt = time.Now()
			apitest.ValidateEnvelope(t, env)
			it, ok := newItem(events.Event{Envelope: env, Position: events.Position{Partition: 1, Offset: 7}})
			if !ok {
				t.Errorf("%s: no client message", p.EventType())
				continue
			}
			apitest.ValidateWSMessage(t, it.message())
			apitest.ValidateWSMessage(t, it.messageWith(nil, "v1.0-3.1-7"))
			if it.status {
				apitest.ValidateWSMessage(t, snapshotOf(it, "v1.1-7"))
			}
		}
	}
	for _, typ := range events.Types() {
		if !covered[typ] {
			t.Errorf("no sample payload of %s", typ)
		}
	}
	for _, m := range [][]byte{
		mustJSON(connectedMsg{Type: TypeConnected, TicketID: "t-1", Resumed: true, Cursor: "v1.1-7"}),
		mustJSON(connectedMsg{Type: TypeConnected, TicketID: "*"}),
		mustJSON(replayCompleteMsg{Type: TypeReplayComplete, TicketID: "t-1", Cursor: "v1.1-7", Replayed: 3}),
		mustJSON(replayCompleteMsg{Type: TypeReplayComplete, TicketID: "t-1"}),
		mustJSON(historyUnavailableMsg{Type: TypeHistoryUnavailable, TicketID: "t-1", RequestedCursor: "v1.1-0", Message: "gone"}),
		mustJSON(errorMsg{Type: TypeError, Code: "forbidden", Message: "no"}),
		pongMsg,
	} {
		apitest.ValidateWSMessage(t, m)
	}
	if apitest.CheckWSMessage([]byte(`{"type":"log","ticket_id":"t"}`)) == nil {
		t.Errorf("an incomplete log message validated")
	}
}
