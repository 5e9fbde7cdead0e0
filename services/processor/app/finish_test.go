package app

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/processor/executor"
)

// finisher is the simulated executor that records the run ends it is told of (as the real
// one marks its pull request ready), and whether the terminal event was in the log then.
type finisher struct {
	executor.Simulated
	m  *memory
	mu sync.Mutex
	// ends are the terminal types FinishRun saw; beforeTerminal whether the log had no
	// terminal event of the run yet at each call.
	ends           []events.Type
	beforeTerminal []bool
}

func (f *finisher) FinishRun(_ context.Context, run *executor.Run, terminal events.Payload) error {
	f.m.mu.Lock()
	logged := false
	for _, e := range f.m.log {
		logged = logged || (e.RunID == run.ID && events.Terminal(e.Type))
	}
	f.m.mu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.ends = append(f.ends, terminal.EventType())
	f.beforeTerminal = append(f.beforeTerminal, !logged)
	return nil
}

// The engine tells a Finisher the run's end before appending its terminal event; a run
// recovered at its stored terminal event (the driver crashed between storing and appending
// it) is told again, since its forge calls may not have been made.
func TestFinisherIsToldTheRunsEnd(t *testing.T) {
	m := newMemory("test")
	f := &finisher{Simulated: executor.Simulated{LogsPerStep: 1}, m: m}
	a, err := New(Config{MaxIterations: 3, Concurrency: 4, Lease: time.Second, InstanceID: "test"},
		Deps{Log: discard(), Store: m, Producers: m, EventLog: m, Executor: f})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := a.SaveTicket(ctx, "t1", &events.TicketCreatedData{Title: "x"}); err != nil {
		t.Fatal(err)
	}
	if err := a.drive(ctx, mustAccept(t, a, m, "t1", "r1")); err != nil {
		t.Fatal(err)
	}
	if len(f.ends) != 1 || f.ends[0] != events.RunCompleted || !f.beforeTerminal[0] {
		t.Fatalf("FinishRun calls %v (before the terminal event: %v)", f.ends, f.beforeTerminal)
	}

	// A run whose terminal event was stored but not appended.
	if err := a.SaveTicket(ctx, "t2", &events.TicketCreatedData{Title: "y"}); err != nil {
		t.Fatal(err)
	}
	runID := mustAccept(t, a, m, "t2", "r2")
	env := events.MustNew("t2", runID, "processor", &events.RunFailedData{Step: "run_ci", Message: "failed", Error: "boom"})
	m.mu.Lock()
	m.runs[runID].Status, m.runs[runID].PendingEvent, m.runs[runID].Attempt, m.runs[runID].Step = RunTerminating, mustJSON(env), 1, "run_ci"
	m.mu.Unlock()
	if err := a.drive(ctx, runID); err != nil {
		t.Fatal(err)
	}
	if len(f.ends) != 2 || f.ends[1] != events.RunFailed {
		t.Fatalf("FinishRun calls %v after the recovery", f.ends)
	}
}

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// mustAccept records the run request in the store, as RequestRun does before driving it.
func mustAccept(t *testing.T, _ *Application, m *memory, ticketID, runID string) string {
	t.Helper()
	env := events.MustNew(ticketID, runID, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice"})
	if _, err := m.AcceptRun(context.Background(), events.Event{Envelope: env}, 0, false, func(string, string) (events.Envelope, error) {
		t.Fatal("rejected")
		return events.Envelope{}, nil
	}); err != nil {
		t.Fatal(err)
	}
	return runID
}
