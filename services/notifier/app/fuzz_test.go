package app

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/cursor"
	"github.com/ticketflow/ticketflow/libs/events"
)

// FuzzCursor: any cursor string either is refused or yields a position that round-trips; a
// ticket's resume offset is never below -1.
func FuzzCursor(f *testing.F) {
	for _, s := range []string{"v1", "v1.0-0", "v1.3-17", "v1.0-5.1-9.11-123456789", "v2.0-1", "v1.-1-0", "v1.0-01",
		"v1.0-9223372036854775807", "v1.0-9223372036854775808", "v1.1-2.1-3", "v1..", "v1.0-", "garbage", ""} {
		f.Add(s, int32(0))
		f.Add(s, int32(11))
	}
	f.Fuzz(func(t *testing.T, s string, p int32) {
		c, err := cursor.Parse(s)
		if err != nil {
			return
		}
		after := ticketAfter(c, p)
		if after < -1 {
			t.Fatalf("after %d for %q", after, s)
		}
		again, err := cursor.Parse(c.String())
		if err != nil || again.String() != c.String() {
			t.Fatalf("%q does not round-trip: %q, %v", s, c.String(), err)
		}
		if o, ok := c[p]; (ok && o != after) || (!ok && after != -1) {
			t.Fatalf("after %d for partition %d of %q", after, p, s)
		}
	})
}

// FuzzEventMessage: whatever a record holds, the notifier either skips it or turns it into a
// valid JSON message whose cursor, per-ticket or merged, is the one given.
func FuzzEventMessage(f *testing.F) {
	for _, p := range []events.Payload{
		&events.LogEmittedData{Level: "INFO", Message: "héllo \"quoted\" \u2028 <script>"},
		&events.StepStartedData{Step: "call_llm", Progress: 50, Attempt: 2},
		&events.RunFailedData{Message: "boom", Error: "exit 1"},
		&events.TicketCreatedData{Title: "t", Owner: "o"},
		&events.CIResultData{Passed: true},
	} {
		env := events.MustNew("t1", "r1", "a", p)
		b, _ := json.Marshal(env)
		f.Add(b)
	}
	f.Add([]byte(`{"id":"x","type":"StepStarted","version":99,"ticket_id":"t","occurred_at":"2025-01-01T00:00:00Z","data":{}}`))
	f.Add([]byte(`{"id":"x","type":"Nope","version":1,"ticket_id":"t","occurred_at":"2025-01-01T00:00:00Z"}`))
	f.Add([]byte(`{"id":"x","type":"LogEmitted","version":1,"ticket_id":"t","occurred_at":"2025-01-01T00:00:00Z","data":{"level":5}}`))
	f.Fuzz(func(t *testing.T, value []byte) {
		env, err := events.DecodeEnvelope(value)
		if err != nil {
			return
		}
		it, ok := newItem(events.Event{Envelope: env, Position: events.Position{Partition: 3, Offset: 42}})
		if !ok {
			return
		}
		var m map[string]any
		if err := json.Unmarshal(it.message(), &m); err != nil {
			t.Fatalf("invalid JSON %q: %v", it.message(), err)
		}
		if m["cursor"] != "v1.3-42" || m["type"] != it.typ || m["event_id"] != env.ID {
			t.Fatalf("message %s", it.message())
		}
		merged := cursor.Cursor{0: 7, 3: 42}.String()
		if err := json.Unmarshal(it.messageWith(nil, merged), &m); err != nil || m["cursor"] != merged {
			t.Fatalf("merged message %s: %v", it.messageWith(nil, merged), err)
		}
		if it.status {
			if snap := snapshotOf(it, "v1.3-50"); json.Unmarshal(snap, &m) != nil || m["snapshot"] != true || m["cursor"] != "v1.3-50" {
				t.Fatalf("snapshot %s", snap)
			}
		}
	})
}

// TestHistoryIsBounded: per-ticket rings and the global budget hold, and what a ring keeps is
// exactly the ticket's latest events: every cursor at or after `covered` is served exactly.
func TestHistoryIsBounded(t *testing.T) {
	m, err := NewMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	cfg := config.Defaults[Config]()
	cfg.HistoryPerTicket, cfg.HistoryBytes = 50, 200_000
	h := newHub(cfg, m)
	byTicket := map[string][]int64{}
	now := time.Now()
	for off := int64(0); off < 20_000; off++ {
		id := []string{"a", "b", "c", "d", "e", "f", "g", "h"}[off%8*(off%3)/2%8]
		ev := events.Event{Envelope: events.MustNew(id, "r", "p", &events.LogEmittedData{Level: "INFO", Message: strings.Repeat("z", int(off%500))}),
			Position: events.Position{Partition: 0, Offset: off}}
		ev.OccurredAt = now
		it, _ := newItem(ev)
		h.apply(&ev, it, false, new([]subscriber))
		byTicket[id] = append(byTicket[id], off)
		if h.bytes > cfg.HistoryBytes {
			t.Fatalf("history holds %d bytes, budget %d", h.bytes, cfg.HistoryBytes)
		}
	}
	for id, offs := range byTicket {
		tk := h.tickets[id]
		if tk.ring.n > cfg.HistoryPerTicket {
			t.Fatalf("ticket %s keeps %d events", id, tk.ring.n)
		}
		var want []int64
		for _, o := range offs {
			if o > tk.covered {
				want = append(want, o)
			}
		}
		got := tk.ring.after(tk.covered)
		if len(got) != len(want) {
			t.Fatalf("ticket %s: ring has %d events after %d, log has %d", id, len(got), tk.covered, len(want))
		}
		for i := range got {
			if got[i].offset != want[i] {
				t.Fatalf("ticket %s: ring[%d] = %d, want %d", id, i, got[i].offset, want[i])
			}
		}
	}
}

// FuzzEncodingMatchesStdlib: every client message body encodes to the same bytes through
// encodeWithCursor's encoder as through encoding/json (escaping of HTML, control characters,
// invalid UTF-8 and U+2028/2029; numbers, floats included; omitempty; embedded structs).
func FuzzEncodingMatchesStdlib(f *testing.F) {
	f.Add("INFO", "ci: <b>done</b> & \"ok\"\n\t\u2028", "run_ci", int64(42), 0.0123, true)
	f.Add("", "\x00\x1f\xff\xfe bad utf-8", "", int64(-1), 1e21, false)
	f.Add("é", strings.Repeat("x", 300), "s", int64(1)<<53, 3.4e-7, true)
	f.Fuzz(func(t *testing.T, a, b, c string, n int64, x float64, ok bool) {
		if x != x || x > 1e300 || x < -1e300 { // NaN and ±Inf are no JSON numbers; neither encoder takes them
			return
		}
		h := header{Type: a, TicketID: b, Timestamp: c, EventID: a + b, RunID: c}
		errText := b
		bodies := []any{
			logMsg{h, a, b, c, a},
			statusUpdateMsg{header: h, Status: "FAILED", Message: b, Step: c, Progress: int(n), Error: &errText, Snapshot: ok},
			statusUpdateMsg{header: h, Status: "RUNNING", Message: b},
			ciResultMsg{h, ok, int(n), n, int(n), b},
			ticketCreatedMsg{h, a, b, c, a},
			runStartedMsg{h, int(n), int(n), c},
			stepCompletedMsg{h, events.StepCompletedData{Step: a, Progress: int(n), Outcome: b, DurationMS: n, Error: c}},
			runRejectedMsg{h, b, c},
			cancelRequestedMsg{h, a},
			changesRequestedMsg{h, a, b, c},
			logTruncatedMsg{h, events.LogTruncatedData{Step: a, LinesTotal: n, Artifact: b}},
			agentToolMsg{h, events.AgentToolCalledData{Tool: a, Arguments: b, Result: c, OK: ok, Error: a, DurationMS: n}},
			llmCallMsg{h, events.LLMCallCompletedData{Provider: a, Model: b, InputTokens: n, CostUSD: x, LatencyMS: n}},
			runResumedMsg{h, a, b, c, int(n), int(n)},
			pullRequestMsg{h, events.PullRequestOpenedData{URL: a, Number: int(n), Forge: b, Branch: c, Reused: ok}},
			repositoryConfigMsg{h, events.RepositoryConfigLoadedData{Source: a, SHA256: b, SizeBytes: int(n), Config: events.RepositoryConfig{
				CICommand: c, CICommandFrom: a, CITimeoutMS: n, Editable: []string{a, b}, MaxCostUSD: x, Notes: []string{c}}}},
		}
		for _, body := range bodies {
			want, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			got, cut := encodeWithCursor(body, []byte("v1.3-7"))
			if string(got[:cut]) != string(want[:len(want)-1]) || string(got[cut:]) != `,"cursor":"v1.3-7"}` {
				t.Fatalf("%T:\n got %s\nwant %s", body, got, want)
			}
		}
	})
}
