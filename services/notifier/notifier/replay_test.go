package notifier

import (
	"context"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// readUntil reads messages until one of type typ (inclusive) and returns them all.
func readUntil(t *testing.T, c *client, typ string) []msg {
	t.Helper()
	var out []msg
	for {
		m, err := c.read(5 * time.Second)
		if err != nil {
			t.Fatalf("reading until %s: %v (got %d messages)", typ, err, len(out))
		}
		out = append(out, m)
		if m.Type == typ {
			return out
		}
	}
}

func eventIDs(ms []msg) []string {
	var ids []string
	for _, m := range ms {
		if m.EventID != "" {
			ids = append(ids, m.EventID)
		}
	}
	return ids
}

func envIDs(envs []events.Envelope) []string {
	ids := make([]string, len(envs))
	for i, e := range envs {
		ids[i] = e.ID
	}
	return ids
}

// TestNoCursorGetsCurrentRunThenLive: a late joiner without a cursor receives the latest
// run from its request event on (not the earlier run), replay_complete, then live events.
// A ticket without a run gets only connected.
func TestNoCursorGetsCurrentRunThenLive(t *testing.T) {
	e := newTestEnv(t, 2)
	e.eachHistory(t, func(t *testing.T, srv *testServer) {
		ticket := newTicketID("nc")
		e.append(created(ticket, "bob"))
		e.append(runEvents(ticket, "run-1", "bob")...)
		run2 := runEvents(ticket, "run-2", "bob")
		e.append(run2[:9]...)

		c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("bob", "user")})
		got := readUntil(t, c, app.TypeReplayComplete)
		if got[0].Type != app.TypeConnected || got[0].Resumed {
			t.Fatalf("first = %s", got[0].raw)
		}
		if ids, want := eventIDs(got), envIDs(run2[:9]); !equal(ids, want) {
			t.Fatalf("replayed %v, want the current run's %v", ids, want)
		}
		if got[1].Type != app.TypeStatusUpdate || got[1].Status != "PENDING" {
			t.Fatalf("replay starts with %s, want PENDING", got[1].raw)
		}
		rc := got[len(got)-1]
		if rc.Replayed != 9 || rc.Cursor != got[len(got)-2].Cursor {
			t.Fatalf("replay_complete = %s", rc.raw)
		}
		e.append(run2[9:]...)
		for _, want := range run2[9:] {
			m, err := c.read(5 * time.Second)
			if err != nil || m.EventID != want.ID {
				t.Fatalf("live: got %s (%v), want %s", m.raw, err, want.ID)
			}
		}

		// No run yet: connected only, then live.
		fresh := newTicketID("nc-fresh")
		e.append(created(fresh, "bob"))
		c2 := mustDial(t, srv.addr, fresh, dialOpts{token: e.token("bob", "user")})
		if m, err := c2.readConnectedNoRun(5 * time.Second); err != nil || m.Type != app.TypeConnected {
			t.Fatalf("first = %s, %v", m.raw, err)
		}
		run := runEvents(fresh, "run-1", "bob")
		e.append(run[0])
		if m, err := c2.read(5 * time.Second); err != nil || m.Type != app.TypeStatusUpdate || m.Status != "PENDING" || m.EventID != run[0].ID {
			t.Fatalf("after connected: %s, %v (want live PENDING)", m.raw, err)
		}
	})
}

func equal(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// TestResumeFromCursorExactly: from a cursor in the middle, exactly the following events,
// both from memory and from Kafka, for the ticket stream and the all-tickets stream.
func TestResumeFromCursorExactly(t *testing.T) {
	e := newTestEnv(t, 2)
	mem := e.start(testConfig())
	cfgK := testConfig()
	cfgK.HistoryPerTicket = 0
	kaf := e.start(cfgK)

	ticket, other := newTicketID("rc"), newTicketID("rc-other")
	e.append(created(ticket, "carol"), created(other, "dave"))
	envs := logEvents(ticket, "r", 40)
	var pos []events.Position
	for i, ev := range envs {
		pos = append(pos, e.append(append([]events.Envelope{ev}, logEvents(other, "r", 1+i%3)...)...)[0])
	}
	mid := cursor.Single(pos[14].Partition, pos[14].Offset).String()
	last := map[int32]int64{}
	for _, ev := range e.allEvents() {
		last[ev.Partition] = max(last[ev.Partition], ev.Offset)
	}
	for _, srv := range []*testServer{mem, kaf} { // so that all of it is history, none live
		for p, o := range last {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			srv.n.app.WaitPosition(ctx, p, o)
			cancel()
		}
	}
	for name, srv := range map[string]*testServer{"memory": mem, "kafka": kaf} {
		c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("carol", "user"), cursor: &mid})
		got := readUntil(t, c, app.TypeReplayComplete)
		c.close()
		if !got[0].Resumed {
			t.Errorf("%s: connected not resumed: %s", name, got[0].raw)
		}
		if ids := eventIDs(got); !equal(ids, envIDs(envs[15:])) {
			t.Errorf("%s: replayed %d events, want %d", name, len(ids), len(envs)-15)
		}
	}

	// /ws/tickets from a merged cursor: every event after it on every partition.
	all := e.allEvents()
	start := cursor.Cursor{}
	for _, ev := range all[:len(all)/2] {
		if start.After(ev.Partition, ev.Offset) {
			start[ev.Partition] = ev.Offset
		}
	}
	var want []string
	for _, ev := range all {
		if start.After(ev.Partition, ev.Offset) {
			want = append(want, ev.ID)
		}
	}
	cs := start.String()
	c := mustDial(t, mem.addr, "", dialOpts{path: "/ws/tickets", token: e.token("root", "admin"), cursor: &cs})
	got := readUntil(t, c, app.TypeReplayComplete)
	if ids := eventIDs(got); len(ids) != len(want) {
		t.Fatalf("all-tickets replay: %d events, want %d", len(ids), len(want))
	}
	seen := map[string]bool{}
	for _, id := range eventIDs(got) {
		seen[id] = true
	}
	for _, id := range want {
		if !seen[id] {
			t.Fatalf("all-tickets replay misses %s", id)
		}
	}
	if rc := got[len(got)-1]; rc.Replayed != len(want) {
		t.Fatalf("replay_complete %s", rc.raw)
	}
}

// TestHistoryUnavailable: a cursor below the log start (records deleted) or beyond the log
// end gets history_unavailable, then a status_update snapshot of the current state, then
// live events: never a silent gap.
func TestHistoryUnavailable(t *testing.T) {
	e := newTestEnv(t, 1)
	cfg := testConfig()
	cfg.HistoryPerTicket = 0 // the log is the only history
	srv := e.start(cfg)
	ticket := newTicketID("gone")
	e.append(created(ticket, "erin"))
	run := runEvents(ticket, "run-1", "erin")
	pos := e.append(run[:10]...)
	old := cursor.Single(pos[1].Partition, pos[1].Offset).String()
	wctx, wcancel := context.WithTimeout(context.Background(), 5*time.Second)
	srv.n.app.WaitPosition(wctx, pos[9].Partition, pos[9].Offset) // consumed before deletion
	wcancel()

	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	del := kadm.Offsets{}
	del.Add(kadm.Offset{Topic: e.kcfg.Topic, Partition: pos[5].Partition, At: pos[5].Offset})
	resp, err := kadm.NewClient(cl).DeleteRecords(context.Background(), del)
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		t.Fatalf("delete records: %v", err)
	}

	lastPos, next := pos[9], 10
	for _, cur := range []string{old, cursor.Single(pos[0].Partition, pos[9].Offset+1000).String()} {
		c := mustDial(t, srv.addr, ticket, dialOpts{token: e.token("erin", "user"), cursor: &cur})
		got := readUntil(t, c, app.TypeReplayComplete)
		types := []string{}
		for _, m := range got {
			types = append(types, m.Type)
		}
		if !equal(types, []string{app.TypeConnected, app.TypeHistoryUnavailable, app.TypeStatusUpdate, app.TypeReplayComplete}) {
			t.Fatalf("cursor %s: %v", cur, types)
		}
		if got[1].RequestedCursor != cur || got[1].Message == "" {
			t.Fatalf("history_unavailable = %s", got[1].raw)
		}
		snap := got[2]
		last := cursor.Single(lastPos.Partition, lastPos.Offset).String()
		// The state is the last StepStarted appended (load_conversation), as of the ticket's
		// last event.
		if !snap.Snapshot || snap.Status != "IN_PROGRESS" || snap.Step != "load_conversation" || snap.Cursor != last {
			t.Fatalf("snapshot = %s, want IN_PROGRESS load_conversation at %s", snap.raw, last)
		}
		if got[3].Cursor != last {
			t.Fatalf("replay_complete = %s, want cursor %s", got[3].raw, last)
		}
		lastPos = e.append(run[next])[0]
		if m, err := c.read(5 * time.Second); err != nil || m.EventID != run[next].ID {
			t.Fatalf("live after snapshot: %s, %v", m.raw, err)
		}
		next++
		c.close()
	}
}
