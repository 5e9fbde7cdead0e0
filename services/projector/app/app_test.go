package app

import (
	"context"
	"errors"
	"log/slog"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// fakeStore records what a batch does, in memory.
type fakeStore struct {
	next     int64
	saved    int64
	recorded map[string]bool
	calls    []string
	updates  []workflow.Update
	traceIDs []string // of RequestRun calls
}

func (s *fakeStore) Offsets(context.Context) (map[int32]int64, error)  { return nil, nil }
func (s *fakeStore) StaleOffsets(context.Context, string) (int, error) { return 0, nil }
func (s *fakeStore) ForgetOffsets(context.Context) error               { return nil }
func (s *fakeStore) NextOffset(context.Context) (int64, error)         { return s.next, nil }
func (s *fakeStore) SetNextOffset(_ context.Context, n int64, _ string) error {
	s.saved = n
	return nil
}
func (s *fakeStore) InBatch(_ context.Context, _ int32, fn func(Batch) error) error {
	return fn(s)
}
func (s *fakeStore) Record(_ context.Context, _ string, rows []AuditRow) ([]bool, error) {
	fresh := make([]bool, len(rows))
	for i, row := range rows {
		fresh[i] = !s.recorded[row.Event.ID]
		s.recorded[row.Event.ID] = true
	}
	return fresh, nil
}
func (s *fakeStore) call(name string) error { s.calls = append(s.calls, name); return nil }
func (s *fakeStore) CreateTicket(context.Context, events.Event, *events.TicketCreatedData) error {
	return s.call("CreateTicket")
}
func (s *fakeStore) RequestRun(_ context.Context, _ events.Event, _ *events.ProcessingRequestedData, _, traceID string) error {
	s.traceIDs = append(s.traceIDs, traceID)
	return s.call("RequestRun")
}
func (s *fakeStore) TakeOverTicket(context.Context, events.Event, string, string) error {
	return s.call("TakeOverTicket")
}
func (s *fakeStore) StartRun(context.Context, events.Event, *events.RunStartedData) error {
	return s.call("StartRun")
}
func (s *fakeStore) StartStep(context.Context, events.Event, *events.StepStartedData) error {
	return s.call("StartStep")
}
func (s *fakeStore) CompleteStep(context.Context, events.Event, *events.StepCompletedData) error {
	return s.call("CompleteStep")
}
func (s *fakeStore) FinishRun(context.Context, events.Event, Finish) error {
	return s.call("FinishRun")
}
func (s *fakeStore) RejectRun(context.Context, events.Event, string, string) error {
	return s.call("RejectRun")
}
func (s *fakeStore) ValidateRun(context.Context, events.Event) error { return s.call("ValidateRun") }
func (s *fakeStore) SetRepositoryConfig(context.Context, events.Event, *events.RepositoryConfigLoadedData) error {
	return nil
}

func (s *fakeStore) RecordLLMCall(context.Context, events.Event, *events.LLMCallCompletedData) error {
	return s.call("RecordLLMCall")
}
func (s *fakeStore) CountToolCall(context.Context, events.Event) error {
	return s.call("CountToolCall")
}

func (s *fakeStore) SetPullRequest(context.Context, events.Event, *events.PullRequestOpenedData) error {
	return s.call("SetPullRequest")
}
func (s *fakeStore) UpdateTicket(_ context.Context, _ events.Event, u workflow.Update) error {
	s.updates = append(s.updates, u)
	return s.call("UpdateTicket")
}

func record(t *testing.T, offset int64, env events.Envelope) Record {
	t.Helper()
	return Record{Offset: offset, Event: events.Event{Envelope: env}}
}

// A batch skips what is below the stored offset, what cannot be read and what was recorded
// before, moves past transaction markers, and stores the offset after its last record.
func TestApplyBatchSkipsAndAdvances(t *testing.T) {
	s := &fakeStore{next: 1, recorded: map[string]bool{}}
	a := New(s, slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	created := events.MustNew("t1", "", "alice", &events.TicketCreatedData{Title: "x", Owner: "alice"})
	requested := events.MustNew("t1", "r1", "alice", &events.ProcessingRequestedData{RequestedBy: "alice"})
	step := events.MustNew("t1", "r1", "processor", &events.StepStartedData{Step: "call_llm", Progress: 50, Iteration: 1, Attempt: 1})
	recs := []Record{
		record(t, 0, created), // applied before
		record(t, 1, created),
		{Offset: 2, Err: errors.New("not an envelope")},
		record(t, 3, requested),
		record(t, 4, requested), // the same event appended again
		{Offset: 5, Control: true},
		record(t, 6, step),
		{Offset: 7, Control: true},
	}
	if err := a.ApplyBatch(context.Background(), "topic-id", 0, recs); err != nil {
		t.Fatal(err)
	}
	want := []string{"CreateTicket", "RequestRun", "TakeOverTicket", "StartStep", "UpdateTicket"}
	if len(s.calls) != len(want) {
		t.Fatalf("calls %v, want %v", s.calls, want)
	}
	for i := range want {
		if s.calls[i] != want[i] {
			t.Fatalf("calls %v, want %v", s.calls, want)
		}
	}
	if s.saved != 8 {
		t.Errorf("next offset stored %d, want 8", s.saved)
	}
	if u := s.updates[0]; u.Status != workflow.InProgress || u.Step != "call_llm" || u.Progress != 50 {
		t.Errorf("status update %+v", u)
	}
	if n := testutil.ToFloat64(a.metrics.applied); n != 3 {
		t.Errorf("applied %v, want 3", n)
	}
	for reason, n := range map[string]float64{"duplicate": 1, "malformed": 1, "duplicate_event_id": 1} {
		if got := testutil.ToFloat64(a.metrics.skipped.WithLabelValues(reason)); got != n {
			t.Errorf("skipped %s = %v, want %v", reason, got, n)
		}
	}
}

// A run's trace id is its request record's: read from the traceparent header, "" without one.
func TestRequestRunGetsTheRecordsTraceID(t *testing.T) {
	s := &fakeStore{recorded: map[string]bool{}}
	a := New(s, slog.New(slog.DiscardHandler), nil)
	traced := record(t, 0, events.MustNew("t1", "r1", "alice", &events.ProcessingRequestedData{RequestedBy: "alice"}))
	traced.Headers = map[string]string{events.HeaderTraceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}
	plain := record(t, 1, events.MustNew("t1", "r2", "alice", &events.ProcessingRequestedData{RequestedBy: "alice"}))
	malformed := record(t, 2, events.MustNew("t1", "r3", "alice", &events.ProcessingRequestedData{RequestedBy: "alice"}))
	malformed.Headers = map[string]string{events.HeaderTraceparent: "not-a-traceparent"}
	if err := a.ApplyBatch(context.Background(), "topic-id", 0, []Record{traced, plain, malformed}); err != nil {
		t.Fatal(err)
	}
	want := []string{"4bf92f3577b34da6a3ce929d0e0e4736", "", ""}
	if len(s.traceIDs) != 3 || s.traceIDs[0] != want[0] || s.traceIDs[1] != "" || s.traceIDs[2] != "" {
		t.Fatalf("trace ids %q, want %q", s.traceIDs, want)
	}
}
