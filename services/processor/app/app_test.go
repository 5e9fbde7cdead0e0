package app

// The use cases without Kafka or PostgreSQL: an in-memory store, producer and log stand in
// for the adapters, so what the engine appends for each path through the workflow graph is
// checked in milliseconds (the wired processor has its tests in package processor).

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/ticketflow/ticketflow/services/processor/executor"
)

type memTicket struct {
	t      executor.Ticket
	used   int
	active string
}

// memory is the store, the producers and the log at once.
type memory struct {
	mu      sync.Mutex
	owner   string
	tickets map[string]*memTicket
	runs    map[string]*RunRow
	log     []events.Envelope
}

func newMemory(owner string) *memory {
	return &memory{owner: owner, tickets: map[string]*memTicket{}, runs: map[string]*RunRow{}}
}

func (m *memory) SaveTicket(_ context.Context, id string, d *events.TicketCreatedData) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.tickets[id] == nil {
		m.tickets[id] = &memTicket{t: executor.Ticket{ID: id, Title: d.Title, SimulateFailure: d.SimulateFailure}}
	}
	return nil
}

func (m *memory) AddFeedback(_ context.Context, ticketID, _ string, _ int64, comment string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tickets[ticketID].t.Feedback = append(m.tickets[ticketID].t.Feedback, comment)
	return nil
}

func (m *memory) Ticket(_ context.Context, id string) (executor.Ticket, int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.tickets[id]
	return t.t, t.used, nil
}

func (m *memory) AcceptRun(_ context.Context, ev events.Event, _ time.Duration, _ bool,
	rejection func(reason, activeRunID string) (events.Envelope, error)) (AcceptOutcome, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.runs[ev.RunID] != nil {
		return AcceptOutcome{}, nil
	}
	row := &RunRow{RunID: ev.RunID, TicketID: ev.TicketID, Partition: ev.Partition, RequestOffset: ev.Offset, Status: RunActive, Owner: m.owner}
	if t := m.tickets[ev.TicketID]; t.active != "" {
		env, err := rejection("busy", t.active)
		if err != nil {
			return AcceptOutcome{}, err
		}
		row.Status, row.PendingEvent = RunTerminating, mustJSON(env)
	} else {
		t.active = ev.RunID
	}
	m.runs[ev.RunID] = row
	return AcceptOutcome{Drive: true}, nil
}

func (m *memory) Run(_ context.Context, runID string) (RunRow, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return *m.runs[runID], nil
}

func (m *memory) ClaimRuns(context.Context, time.Duration, []string) ([]string, error) {
	return nil, nil
}
func (m *memory) Surplus(context.Context, time.Duration) (int, error) { return 0, nil }
func (m *memory) HandOver(context.Context, string, string, int, executor.RunState) error {
	return nil
}
func (m *memory) RenewLeases(_ context.Context, _ time.Duration, ids []string) ([]string, error) {
	return ids, nil
}
func (m *memory) Heartbeat(context.Context, time.Duration) error { return nil }
func (m *memory) Release(context.Context) error                  { return nil }

func (m *memory) StartStep(_ context.Context, runID, step string, attempt, iteration int, state executor.RunState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runs[runID]
	r.Step, r.Attempt, r.Iteration, r.State = step, attempt, iteration, state
	return nil
}

func (m *memory) SaveState(_ context.Context, runID string, state executor.RunState) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[runID].State = state
	return nil
}

func (m *memory) UseIteration(_ context.Context, _, ticketID string, iteration int) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.tickets[ticketID].used = max(m.tickets[ticketID].used, iteration)
	return nil
}

func (m *memory) RequestCancel(_ context.Context, runID, by string) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r := m.runs[runID]
	if r == nil || r.Status != RunActive || r.CancelRequested != "" {
		return false, nil
	}
	r.CancelRequested = by
	return true, nil
}

func (m *memory) CancelRequested(_ context.Context, runID string) string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.runs[runID].CancelRequested
}

func (m *memory) BeginTerminal(_ context.Context, runID string, env events.Envelope) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[runID].Status, m.runs[runID].PendingEvent = RunTerminating, mustJSON(env)
	return nil
}

func (m *memory) FinishTerminal(_ context.Context, runID, ticketID string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.runs[runID].Status = RunTerminal
	if m.tickets[ticketID].active == runID {
		m.tickets[ticketID].active = ""
	}
	return nil
}

func (m *memory) EarlierRuns(context.Context, string, string) ([]executor.RunState, error) {
	return nil, nil
}

func (m *memory) Open(context.Context, string) (Producer, error) { return m, nil }

func (m *memory) Append(_ context.Context, envs ...events.Envelope) ([]events.Position, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	pos := make([]events.Position, len(envs))
	for i, e := range envs {
		pos[i] = events.Position{Offset: int64(len(m.log))}
		m.log = append(m.log, e)
	}
	return pos, nil
}

func (m *memory) Close() {}

func (m *memory) HasEvent(_ context.Context, _ int32, from int64, match func(events.Envelope) bool) (bool, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.ContainsFunc(m.log[min(int(from), len(m.log)):], match), nil
}

// runLog is the run's events once its terminal one is in the log.
func (m *memory) runLog(t *testing.T, runID string) []events.Envelope {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		m.mu.Lock()
		var out []events.Envelope
		done := false
		for _, e := range m.log {
			if e.RunID == runID {
				out = append(out, e)
				done = done || events.Terminal(e.Type)
			}
		}
		m.mu.Unlock()
		if done {
			return out
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %s has no terminal event: %v", runID, out)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func mustJSON(env events.Envelope) []byte {
	b, err := json.Marshal(env)
	if err != nil {
		panic(err)
	}
	return b
}

// intake delivers nothing: the tests call the use cases themselves.
type intake struct{ running chan struct{} }

func (i intake) Run(ctx context.Context) error { close(i.running); <-ctx.Done(); return nil }
func (i intake) Running() <-chan struct{}      { return i.running }
func (i intake) Close() error                  { return nil }

func start(t *testing.T, maxIterations int) (*Application, *memory) {
	t.Helper()
	m := newMemory("test")
	a, err := New(Config{MaxIterations: maxIterations, Concurrency: 4, Lease: time.Second, InstanceID: "test"},
		Deps{Log: slog.New(slog.DiscardHandler), Store: m, Producers: m, EventLog: m,
			Executor: &executor.Simulated{LogsPerStep: 1}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = a.Run(ctx, intake{running: make(chan struct{})}) }()
	t.Cleanup(func() { cancel(); <-done })
	<-a.Running()
	return a, m
}

// saveTicket creates the ticket id, its simulated CI failing as simulateFailure says.
func saveTicket(t *testing.T, a *Application, id, simulateFailure string) {
	t.Helper()
	if err := a.SaveTicket(context.Background(), id, &events.TicketCreatedData{Title: "x", SimulateFailure: simulateFailure}); err != nil {
		t.Fatal(err)
	}
}

func request(t *testing.T, a *Application, ticketID, runID string) {
	t.Helper()
	env := events.MustNew(ticketID, runID, "user:alice", &events.ProcessingRequestedData{RequestedBy: "alice"})
	if err := a.RequestRun(context.Background(), events.Event{Envelope: env}); err != nil {
		t.Fatal(err)
	}
}

func steps(evs []events.Envelope) []string {
	var out []string
	for _, e := range evs {
		if p, err := e.Decode(); err == nil {
			if s, ok := p.(*events.StepStartedData); ok {
				out = append(out, fmt.Sprintf("%s@%d", s.Step, s.Iteration))
			}
		}
	}
	return out
}

func terminal(t *testing.T, evs []events.Envelope) events.Payload {
	t.Helper()
	p, err := evs[len(evs)-1].Decode()
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// A CI failure loops back to call_llm in a new iteration, with the failure in the log; the
// second iteration passes and completes the run.
func TestRunLoopsOnCIFailureThenCompletes(t *testing.T) {
	a, m := start(t, 3)
	saveTicket(t, a, "t1", "once")
	request(t, a, "t1", "r1")
	evs := m.runLog(t, "r1")
	want := []string{"check_iterations@0", "prepare_repository@1", "load_conversation@1", "call_llm@1", "commit_changes@1", "run_ci@1",
		"handle_ci_result@1", "call_llm@2", "commit_changes@2", "run_ci@2", "handle_ci_result@2"}
	if got := steps(evs); !slices.Equal(got, want) {
		t.Errorf("steps %v, want %v", got, want)
	}
	retry := fmt.Sprintf(workflow.LogCIRetry, 1, 2, 3)
	if !slices.ContainsFunc(evs, func(e events.Envelope) bool {
		p, _ := e.Decode()
		l, ok := p.(*events.LogEmittedData)
		return ok && l.Message == retry && l.Step == "handle_ci_result"
	}) {
		t.Errorf("no log line %q", retry)
	}
	if c, ok := terminal(t, evs).(*events.RunCompletedData); !ok || c.Iteration != 2 || c.Message != workflow.MessageCompleted {
		t.Errorf("terminal %#v", terminal(t, evs))
	}
}

// CI failing on the last iteration allowed fails the run; a ticket with no iteration left
// has its next run cancelled at check_iterations.
func TestRunFailsAtTheLastIterationThenIsCancelled(t *testing.T) {
	a, m := start(t, 2)
	saveTicket(t, a, "t1", "always")
	request(t, a, "t1", "r1")
	evs := m.runLog(t, "r1")
	if f, ok := terminal(t, evs).(*events.RunFailedData); !ok || f.Step != "handle_ci_result" || f.Message != workflow.MessageCIFailedLast {
		t.Errorf("terminal %#v", terminal(t, evs))
	}
	if got := steps(evs); len(got) != 11 || got[len(got)-1] != "handle_ci_result@2" {
		t.Errorf("steps %v", got)
	}
	request(t, a, "t1", "r2")
	evs = m.runLog(t, "r2")
	if got := steps(evs); !slices.Equal(got, []string{"check_iterations@0"}) {
		t.Errorf("steps %v", got)
	}
	c, ok := terminal(t, evs).(*events.RunCancelledData)
	if !ok || c.Message != workflow.MessageIterationsExhausted || c.Reason != "MAX_ITERATIONS (2) reached" {
		t.Errorf("terminal %#v", terminal(t, evs))
	}
}

// A second request while a run holds the ticket is rejected, once.
func TestBusyTicketRejectsTheRequest(t *testing.T) {
	a, m := start(t, 3)
	saveTicket(t, a, "t1", "")
	m.mu.Lock()
	m.tickets["t1"].active = "r0" // a run another request started
	m.mu.Unlock()
	request(t, a, "t1", "r1")
	evs := m.runLog(t, "r1")
	if r, ok := terminal(t, evs).(*events.RunRejectedData); len(evs) != 1 || !ok || r.ActiveRunID != "r0" {
		t.Errorf("events %v", evs)
	}
}
