package notifier

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/services/notifier/app"
)

// TestLiveRunSequence is the brief's exact sequence on a client connected before the run.
func TestLiveRunSequence(t *testing.T) {
	e := newTestEnv(t, 4)
	srv, ticket := e.startTicket(testConfig(), "live")

	c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("alice", "user")})
	first, err := c.readConnectedNoRun(5 * time.Second)
	if err != nil || first.Type != app.TypeConnected || first.TicketID != ticket || first.Resumed {
		t.Fatalf("first message = %+v, %v", first, err)
	}
	run := runEvents(ticket, "run-1", "alice")
	pos := e.append(run...)

	type su struct {
		status, step string
		progress     int
	}
	want := []su{{"PENDING", "", 0}, {"IN_PROGRESS", "check_iterations", 5}, {"IN_PROGRESS", "prepare_repository", 20},
		{"IN_PROGRESS", "load_conversation", 30}, {"IN_PROGRESS", "call_llm", 50}, {"IN_PROGRESS", "commit_changes", 70},
		{"IN_PROGRESS", "run_ci", 85}, {"IN_PROGRESS", "handle_ci_result", 95}, {"COMPLETED", "await_validation", 100}}
	var got []su
	logs := 0
	for i, ev := range run {
		m, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
		if m.EventID != ev.ID || m.RunID != "run-1" || m.TicketID != ticket || m.Timestamp == "" {
			t.Fatalf("message %d = %s, want event %s", i, m.raw, ev.ID)
		}
		if wantCur := cursor.Single(pos[i].Partition, pos[i].Offset).String(); m.Cursor != wantCur {
			t.Fatalf("message %d cursor %q, want %q", i, m.Cursor, wantCur)
		}
		switch m.Type {
		case app.TypeStatusUpdate:
			if m.Progress == nil || m.Message == "" {
				t.Fatalf("status_update without progress or message: %s", m.raw)
			}
			if m.Error != nil {
				t.Fatalf("status_update %s carries error", m.raw)
			}
			got = append(got, su{m.Status, m.Step, *m.Progress})
		case app.TypeLog:
			if m.Level != "INFO" || m.Message == "" {
				t.Fatalf("log = %s", m.raw)
			}
			logs++
		}
	}
	if len(got) != len(want) {
		t.Fatalf("status updates %+v, want %+v", got, want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("status update %d = %+v, want %+v", i, got[i], want[i])
		}
	}
	if logs != 7 {
		t.Fatalf("%d logs, want 7", logs)
	}
}

// Events reach a connection whose last write through its writer is older than the write
// timeout: that write's deadline must not fail the writes made since without waiting (an
// event for an idle connection is written by the hub's goroutine, never blocking). Events
// appended one by one, each once the previous one arrived, are each written that way.
func TestIdleConnectionGetsEventsLongAfterItsLastWrite(t *testing.T) {
	e := newTestEnv(t, 4)
	cfg := testConfig()
	cfg.WriteTimeout = 50 * time.Millisecond
	srv, ticket := e.startTicket(cfg, "idle")
	c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("alice", "user")})
	if _, err := c.readConnectedNoRun(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	run := runEvents(ticket, "run-1", "alice")
	for i, ev := range run {
		time.Sleep(3 * cfg.WriteTimeout)
		e.append(ev)
		m, err := c.read(5 * time.Second)
		if err != nil || m.EventID != ev.ID {
			t.Fatalf("event %d of %d: %s, %v (want %s)", i+1, len(run), m.raw, err, ev.ID)
		}
	}
}

// A client that stops reading while events keep coming one at a time (each written inline to
// its idle connection, the socket taking less and less of them) gets every event once it reads
// again, whole and in order: what the socket did not take went back to the connection's queue
// and was written by its writer, ahead of everything queued later.
func TestStalledReaderGetsEveryInlineEventInOrder(t *testing.T) {
	e := newTestEnv(t, 4)
	cfg := testConfig()
	cfg.QueueBytes = 64 << 20
	srv, ticket := e.startTicket(cfg, "stall")
	c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("alice", "user")})
	if _, err := c.readConnectedNoRun(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	line := strings.Repeat("x", 12<<10) // under the inline bound; 600 of them overflow any socket buffer
	var ids []string
	for i := range 600 {
		env := events.MustNew(ticket, "run-1", "processor", &events.LogEmittedData{Level: "INFO", Message: fmt.Sprintf("%04d %s", i, line), Step: "run_ci"})
		e.append(env)
		ids = append(ids, env.ID)
	}
	for i, id := range ids {
		m, err := c.read(10 * time.Second)
		if err != nil || m.EventID != id || !strings.HasPrefix(m.Message, fmt.Sprintf("%04d ", i)) {
			t.Fatalf("message %d of %d: event %s, %.10q, %v (want %s)", i+1, len(ids), m.EventID, m.Message, err, id)
		}
	}
}
