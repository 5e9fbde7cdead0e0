package notifier

import (
	"context"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/events"
)

func TestAuthMatrix(t *testing.T) {
	e := newTestEnv(t, 2)
	srv, ticket := e.startTicket(testConfig(), "auth")
	other, _ := auth.NewVerifier("another-secret-another-secret-0123456789")
	forged, _ := other.Issue("alice", "admin", time.Hour)
	expired, _ := e.verifier.Issue("alice", "user", -time.Minute)
	badCursor := "v2.0-1"

	cases := []struct {
		name    string
		ticket  string
		o       dialOpts
		code    websocket.StatusCode // 0 = accepted
		errCode string
	}{
		{"no token", ticket, dialOpts{}, app.CloseUnauthorized, "unauthenticated"},
		{"garbage token", ticket, dialOpts{token: "not-a-jwt"}, app.CloseUnauthorized, "unauthenticated"},
		{"forged token", ticket, dialOpts{token: forged}, app.CloseUnauthorized, "unauthenticated"},
		{"expired token", ticket, dialOpts{token: expired}, app.CloseUnauthorized, "unauthenticated"},
		{"other user", ticket, dialOpts{token: e.token("mallory", "user")}, app.CloseForbidden, "forbidden"},
		{"owner query token", ticket, dialOpts{token: e.token("alice", "user")}, 0, ""},
		{"owner header token", ticket, dialOpts{token: e.token("alice", "user"), header: true}, 0, ""},
		{"admin", ticket, dialOpts{token: e.token("root", "admin")}, 0, ""},
		{"unknown ticket", "no-such-ticket", dialOpts{token: e.token("root", "admin")}, app.CloseNotFound, "not_found"},
		{"bad cursor", ticket, dialOpts{token: e.token("alice", "user"), cursor: &badCursor}, app.CloseBadRequest, "invalid_cursor"},
		{"all tickets as user", "", dialOpts{path: "/ws/tickets", token: e.token("alice", "user")}, app.CloseForbidden, "forbidden"},
		{"all tickets without token", "", dialOpts{path: "/ws/tickets"}, app.CloseUnauthorized, "unauthenticated"},
		{"all tickets as admin", "", dialOpts{path: "/ws/tickets", token: e.token("root", "admin")}, 0, ""},
		{"all tickets admin header", "", dialOpts{path: "/ws/tickets", token: e.token("root", "admin"), header: true}, 0, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.code != 0 {
				expectRefused(t, srv.addr, tc.ticket, tc.o, tc.code, tc.errCode)
				return
			}
			c, first := dialFirst(t, srv.addr, tc.ticket, tc.o)
			defer c.close()
			if first.Type != app.TypeConnected {
				t.Fatalf("first = %s, want connected", first.raw)
			}
		})
	}

	t.Run("plain GET", func(t *testing.T) {
		resp, err := http.Get("http://" + srv.addr + "/ws/tickets/" + ticket)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusUpgradeRequired {
			t.Fatalf("status %d, want 426", resp.StatusCode)
		}
	})
}

func TestOriginCheck(t *testing.T) {
	e := newTestEnv(t, 1)
	srv := e.start(testConfig(), "http://localhost:8000", "https://app.example")
	ticket := newTicketID("origin")
	e.append(created(ticket, "alice"))
	tok := e.token("alice", "user")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{{"", true}, {"http://localhost:8000", true}, {"https://app.example", true},
		{"https://evil.example", false}, {"http://localhost:8000.evil.example", false}, {"null", false}} {
		c, resp, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok, origin: tc.origin})
		if tc.ok {
			if err != nil {
				t.Fatalf("origin %q refused: %v", tc.origin, err)
			}
			if m, err := c.readConnectedNoRun(5 * time.Second); err != nil || m.Type != app.TypeConnected {
				t.Fatalf("origin %q: %s %v", tc.origin, m.raw, err)
			}
			c.close()
			continue
		}
		if err == nil {
			c.close()
			t.Fatalf("origin %q accepted", tc.origin)
		}
		if resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Fatalf("origin %q: %v (response %v), want 403", tc.origin, err, resp)
		}
	}
}

func TestFrameLimitAndPing(t *testing.T) {
	e := newTestEnv(t, 1)
	srv, ticket := e.startTicket(testConfig(), "frame")
	tok := e.token("alice", "user")
	ctx := context.Background()

	c := mustDial(t, srv.addr, ticket, dialOpts{token: tok})
	if m, _ := c.readConnectedNoRun(5 * time.Second); m.Type != app.TypeConnected {
		t.Fatalf("first = %s", m.raw)
	}
	for _, p := range []string{"ping", `{"type":"ping"}`, "hello"} {
		if err := c.c.Write(ctx, websocket.MessageText, []byte(p)); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if m, err := c.read(5 * time.Second); err != nil || string(m.raw) != `{"type":"pong"}` {
			t.Fatalf("pong: %s %v", m.raw, err)
		}
	}
	// "hello" is ignored: the next message is a live event.
	ev := logEvents(ticket, "r", 1)
	e.append(ev...)
	if m, err := c.read(5 * time.Second); err != nil || m.EventID != ev[0].ID {
		t.Fatalf("after ignored message: %s %v", m.raw, err)
	}

	big := strings.Repeat("x", int(defaults().MaxFrameBytes)+1)
	if err := c.c.Write(ctx, websocket.MessageText, []byte(big)); err != nil {
		t.Fatal(err)
	}
	if code, _ := c.closeCode(5 * time.Second); code != app.CloseTooBig {
		t.Fatalf("close code %d, want 1009", code)
	}

	c2 := mustDial(t, srv.addr, ticket, dialOpts{token: tok})
	_, _ = c2.read(5 * time.Second)
	if err := c2.c.Write(ctx, websocket.MessageBinary, []byte("ping")); err != nil {
		t.Fatal(err)
	}
	if code, _ := c2.closeCode(5 * time.Second); code != app.CloseUnsupported {
		t.Fatalf("binary frame: close code %d, want 1003", code)
	}
}

// TestIdleConnectionsAreClosed: the server pings; a client that never answers (it never
// reads, so its library never sends pongs) is closed after the idle timeout, while one that
// reads stays.
func TestIdleConnectionsAreClosed(t *testing.T) {
	e := newTestEnv(t, 1)
	cfg := testConfig()
	cfg.PingInterval, cfg.IdleTimeout = 100*time.Millisecond, 600*time.Millisecond
	srv, ticket := e.startTicket(cfg, "idle")
	tok := e.token("alice", "user")

	alive, _, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer alive.close()
	aliveErr := make(chan error, 1)
	go func() {
		for {
			if _, err := alive.read(10 * time.Second); err != nil {
				aliveErr <- err
				return
			}
		}
	}()
	dead, _, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer dead.close()
	time.Sleep(2 * time.Second) // the dead client reads nothing, so answers no ping
	if v := srv.metric(t, "ticketflow_notifier_connections", "ticket"); v != 1 {
		t.Fatalf("%v connections open after the idle timeout, want 1 (the live one)", v)
	}
	select {
	case err := <-aliveErr:
		t.Fatalf("the reading client was closed: %v", err)
	default:
	}
}

func TestConnectRateLimit(t *testing.T) {
	e := newTestEnv(t, 1)
	cfg := testConfig()
	cfg.ConnectRate, cfg.ConnectBurst = 1, 3
	srv, ticket := e.startTicket(cfg, "rate")
	tok := e.token("alice", "user")
	refused := 0
	for i := 0; i < 6; i++ {
		c, resp, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok})
		if err == nil {
			c.close()
			continue
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("dial %d: %v", i, err)
		}
		refused++
	}
	if refused != 3 {
		t.Fatalf("%d of 6 refused, want 3 (burst 3)", refused)
	}
	time.Sleep(1100 * time.Millisecond)
	c, _, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok})
	if err != nil {
		t.Fatalf("after refill: %v", err)
	}
	c.close()
}

// TestSlowClient: a client that stops reading is disconnected with 1013 once its bounded
// queue fills, while another client of the same ticket keeps receiving everything promptly.
func TestSlowClient(t *testing.T) {
	e := newTestEnv(t, 1)
	cfg := testConfig()
	cfg.QueueMessages, cfg.QueueBytes = 256, 2<<20
	// The slow client reads only after the fast one got everything: its socket stays full
	// that long, and a write timeout passing meanwhile would drop it without its close frame.
	cfg.WriteTimeout = time.Minute
	srv, ticket := e.startTicket(cfg, "slow")
	tok := e.token("alice", "user")

	slow, _, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok, rcvbuf: 64 << 10})
	if err != nil {
		t.Fatal(err)
	}
	defer slow.close()
	fast, _, err := dialWS(context.Background(), srv.addr, ticket, dialOpts{token: tok})
	if err != nil {
		t.Fatal(err)
	}
	defer fast.close()
	if m, _ := fast.readConnectedNoRun(5 * time.Second); m.Type != app.TypeConnected {
		t.Fatalf("fast first = %s", m.raw)
	}

	// 16 MiB of 4 KiB log lines: far more than socket buffers hold.
	const total = 4000
	line := strings.Repeat("y", 4096)
	var lat []time.Duration
	var wg sync.WaitGroup
	wg.Add(1)
	fastErr := make(chan error, 1)
	go func() {
		defer wg.Done()
		for i := 0; i < total; i++ {
			m, err := fast.read(10 * time.Second)
			if err != nil {
				fastErr <- err
				return
			}
			ts, _ := time.Parse(time.RFC3339Nano, m.Timestamp)
			lat = append(lat, time.Since(ts))
		}
	}()
	for i := 0; i < total; i += 40 {
		batch := make([]events.Envelope, 40)
		for j := range batch {
			batch[j] = events.MustNew(ticket, "r", "processor", &events.LogEmittedData{Level: "INFO", Message: line})
		}
		e.append(batch...)
	}
	wg.Wait()
	select {
	case err := <-fastErr:
		t.Fatalf("fast client: %v", err)
	default:
	}
	worst := time.Duration(0)
	for _, d := range lat {
		worst = max(worst, d)
	}
	t.Logf("fast client: %d messages, worst latency %v", len(lat), worst)
	if worst > 5*time.Second { // a blocked fan-out would stall it for the 10 s write timeout
		t.Errorf("fast client's worst latency %v: the slow client slowed it down", worst)
	}
	if v := srv.metric(t, "ticketflow_notifier_slow_client_disconnects_total", ""); v != 1 {
		t.Fatalf("slow client disconnects = %v, want 1", v)
	}
	// The slow client was dropped from fan-out: its memory is no longer growing.
	subs := srv.n.app.Subscribers(ticket)
	if subs != 1 {
		t.Fatalf("%d subscribers left, want 1", subs)
	}
	// When it finally reads, it finds what the socket held, then close 1013.
	code, got := slow.closeCode(15 * time.Second)
	if code != app.CloseTryAgain {
		t.Fatalf("slow client close code %d after %d messages, want 1013", code, len(got))
	}
	if len(got) >= total {
		t.Fatalf("slow client received all %d messages", len(got))
	}
	t.Logf("slow client got %d of %d messages before 1013", len(got)-1, total)
}
