package notifier

import (
	"context"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/workflow"
)

// TestDuplicateEventIDsNeverSent: the log holds copies of two events, each appended again far
// from its original (an append retried after a crash: same event id), one of them the run's
// request. No client receives an event id twice: live, replayed from memory, replayed from
// Kafka, per ticket and on /ws/tickets; and the copy changes no state (a late joiner sees the
// finished run, not a new PENDING one).
func TestDuplicateEventIDsNeverSent(t *testing.T) {
	e := newTestEnv(t, 2)
	mem := e.start(testConfig())
	cfgK := testConfig()
	cfgK.HistoryPerTicket = 0 // every replay reads Kafka
	kaf := e.start(cfgK)

	ticket, other := newTicketID("dup"), newTicketID("dup-other")
	cr := created(ticket, "alice")
	e.append(cr, created(other, "bob"))
	liveMem := expectConnected(t, mem.addr, ticket, dialOpts{token: e.token("alice", "user")})
	defer liveMem.close()
	liveKaf := expectConnected(t, kaf.addr, ticket, dialOpts{token: e.token("alice", "user")})
	defer liveKaf.close()

	run := runEvents(ticket, "run-1", "alice")
	logs := logEvents(ticket, "run-1", 300)
	var want []events.Envelope // the ticket's events after TicketCreated, each once
	appendTicket := func(envs ...events.Envelope) {
		for _, ev := range envs {
			e.append(ev, logEvents(other, "o", 1)[0]) // interleave another ticket's events
		}
	}
	appendTicket(run[:3]...)
	appendTicket(logs[:250]...)
	appendTicket(run[0]) // the request again, 250 of the ticket's events later
	appendTicket(run[3:]...)
	appendTicket(logs[250:]...)
	appendTicket(logs[5]) // a log line again, ~300 events later
	want = append(append(append(want, run[:3]...), logs[:250]...), run[3:]...)
	want = append(want, logs[250:]...)
	wantIDs := envIDs(want)

	last := map[int32]int64{}
	for _, ev := range e.allEvents() {
		last[ev.Partition] = max(last[ev.Partition], ev.Offset)
	}
	for _, srv := range []*testServer{mem, kaf} {
		for p, o := range last {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			srv.n.app.WaitPosition(ctx, p, o)
			cancel()
		}
	}

	check := func(name string, got []string, want []string) {
		t.Helper()
		seen := map[string]bool{}
		for _, id := range got {
			if seen[id] {
				t.Errorf("%s: event id %s delivered twice", name, id)
				return
			}
			seen[id] = true
		}
		if !equal(got, want) {
			t.Errorf("%s: %d events delivered, want %d in log order", name, len(got), len(want))
		}
	}

	for name, c := range map[string]*client{"live (memory replica)": liveMem, "live (kafka replica)": liveKaf} {
		var got []string
		for len(got) < len(wantIDs) {
			m, err := c.read(5 * time.Second)
			if err != nil {
				t.Fatalf("%s: after %d events: %v", name, len(got), err)
			}
			if m.EventID != "" {
				got = append(got, m.EventID)
			}
		}
		if m, err := c.read(300 * time.Millisecond); err == nil {
			t.Errorf("%s: extra message %s", name, m.raw)
		}
		check(name, got, wantIDs)
	}

	fromStart := cursor.Cursor{}.String()
	for name, srv := range map[string]*testServer{"memory": mem, "kafka": kaf} {
		c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("alice", "user"), cursor: &fromStart})
		got := eventIDs(readUntil(t, c, app.TypeReplayComplete))
		c.close()
		check("replay from the start, "+name, got, append([]string{cr.ID}, wantIDs...))

		// A late joiner without a cursor: the run from its (original) request on, finished.
		c = mustDial(t, srv.addr, ticket, dialOpts{token: e.token("alice", "user")})
		ms := readUntil(t, c, app.TypeReplayComplete)
		c.close()
		check("current run, "+name, eventIDs(ms), wantIDs)
		var final string
		for _, m := range ms {
			if m.Type == app.TypeStatusUpdate {
				final = m.Status
			}
		}
		if final != string(workflow.Completed) {
			t.Errorf("current run, %s: last status %q, want %s", name, final, workflow.Completed)
		}
		if snap := srv.n.app.RunStart(ticket); snap < 0 {
			t.Errorf("%s: no run start", name)
		}
	}

	// /ws/tickets replayed from Kafka: no id twice across the whole log.
	c := mustDial(t, mem.addr, "", dialOpts{path: "/ws/tickets", token: e.token("root", "admin"), cursor: &fromStart})
	got := eventIDs(readUntil(t, c, app.TypeReplayComplete))
	seen := map[string]bool{}
	for _, id := range got {
		if seen[id] {
			t.Fatalf("/ws/tickets replay: event id %s twice", id)
		}
		seen[id] = true
	}
	if all := e.allEvents(); len(got) != len(all)-2 {
		t.Fatalf("/ws/tickets replay: %d events, want %d (the log less its 2 copies)", len(got), len(all)-2)
	}
}
