package notifier

import (
	"context"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
)

func (e *testEnv) wsTicket(bearer string) string {
	e.t.Helper()
	c, err := e.verifier.Verify(bearer)
	if err != nil {
		e.t.Fatal(err)
	}
	tk, _, err := e.verifier.IssueWSTicket(c, 30*time.Second)
	if err != nil {
		e.t.Fatal(err)
	}
	return tk
}

// expectRefused dials and wants an error message with errCode then the close code.
func expectRefused(t *testing.T, addr, ticket string, o dialOpts, code websocket.StatusCode, errCode string) {
	t.Helper()
	c, first := dialFirst(t, addr, ticket, o)
	defer c.close()
	if first.Type != app.TypeError || first.Code != errCode || first.Message == "" {
		t.Fatalf("first = %s, want error %s", first.raw, errCode)
	}
	if got, _ := c.closeCode(5 * time.Second); got != code {
		t.Fatalf("close code %d, want %d", got, code)
	}
}

// dialFirst dials and reads the first message (the caller closes the client).
func dialFirst(t *testing.T, addr, ticket string, o dialOpts) (*client, msg) {
	t.Helper()
	c := mustDial(t, addr, ticket, o)
	first, err := c.read(5 * time.Second)
	if err != nil {
		c.close()
		t.Fatalf("first message: %v", err)
	}
	return c, first
}

func expectConnected(t *testing.T, addr, ticket string, o dialOpts) *client {
	t.Helper()
	c := mustDial(t, addr, ticket, o)
	if m, err := c.readConnectedNoRun(5 * time.Second); err != nil || m.Type != app.TypeConnected {
		c.close()
		t.Fatalf("not connected: %s %v", m.raw, err)
	}
	return c
}

// TestWSTicketSingleUse: a ticket opens one socket, once; a bearer token is not a ticket.
// Without a database, single use holds per replica.
func TestWSTicketSingleUse(t *testing.T) {
	e := newTestEnv(t, 1)
	srv, ticket := e.startTicket(testConfig(), "wst")
	bearer := e.token("alice", "user")

	tk := e.wsTicket(bearer)
	c := expectConnected(t, srv.addr, ticket, dialOpts{ticket: tk})
	c.close()
	expectRefused(t, srv.addr, ticket, dialOpts{ticket: tk}, app.CloseUnauthorized, "unauthenticated")
	expectRefused(t, srv.addr, ticket, dialOpts{ticket: bearer}, app.CloseUnauthorized, "unauthenticated")
	expectRefused(t, srv.addr, ticket, dialOpts{ticket: "garbage"}, app.CloseUnauthorized, "unauthenticated")
	// A ticket is not a bearer token either.
	expectRefused(t, srv.addr, ticket, dialOpts{token: e.wsTicket(bearer)}, app.CloseUnauthorized, "unauthenticated")
	// Another user's ticket opens only what that user may see.
	expectRefused(t, srv.addr, ticket, dialOpts{ticket: e.wsTicket(e.token("mallory", "user"))}, app.CloseForbidden, "forbidden")
}

// TestWSTicketSingleUseAcrossReplicas: with the database, a ticket used on one replica is
// refused on another.
func TestWSTicketSingleUseAcrossReplicas(t *testing.T) {
	e := newTestEnv(t, 1)
	db := pgtest.NewPool(t)
	a := e.startWith(testConfig(), db, nil)
	b := e.startWith(testConfig(), db, nil)
	ticket := newTicketID("wst-db")
	e.append(created(ticket, "alice"))
	// A use older than any ticket's lifetime: pruned by the next use.
	if _, err := db.Exec(context.Background(), `INSERT INTO ws_ticket_uses (jti, used_at) VALUES ('old', now() - interval '1 hour')`); err != nil {
		t.Fatal(err)
	}
	tk := e.wsTicket(e.token("alice", "user"))
	c := expectConnected(t, a.addr, ticket, dialOpts{ticket: tk})
	defer c.close()
	expectRefused(t, b.addr, ticket, dialOpts{ticket: tk}, app.CloseUnauthorized, "unauthenticated")
	expectRefused(t, a.addr, ticket, dialOpts{ticket: tk}, app.CloseUnauthorized, "unauthenticated")
	var n int
	if err := db.QueryRow(context.Background(), `SELECT count(*) FROM ws_ticket_uses`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("ws_ticket_uses rows = %d (%v), want 1 (the old one pruned)", n, err)
	}
	// Fail closed: without the record, no ticket is accepted.
	db.Close()
	expectRefused(t, b.addr, ticket, dialOpts{ticket: e.wsTicket(e.token("alice", "user"))}, app.CloseTryAgain, "unavailable")
}

// TestTokenExpiryClosesTheSocket: an open socket is closed 4401 when its token expires (the
// leeway a connect gets included); the same token then cannot reconnect, nor can a ticket
// issued from it. A ticket's socket carries the exp of the token it came from.
func TestTokenExpiryClosesTheSocket(t *testing.T) {
	e := newTestEnv(t, 1)
	srv, ticket := e.startTicket(testConfig(), "exp")
	short, err := e.verifier.Issue("alice", auth.RoleUser, 1500*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	claims, _ := e.verifier.Verify(short)
	exp := claims.ExpiresAt.Time
	byToken := expectConnected(t, srv.addr, ticket, dialOpts{token: short})
	defer byToken.close()
	byTicket := expectConnected(t, srv.addr, ticket, dialOpts{ticket: e.wsTicket(short)})
	defer byTicket.close()
	spare := e.wsTicket(short)
	long := expectConnected(t, srv.addr, ticket, dialOpts{token: e.token("alice", "user")})
	defer long.close()

	for name, c := range map[string]*client{"token": byToken, "ticket": byTicket} {
		m, err := c.read(time.Until(exp) + auth.Leeway + 5*time.Second)
		if err != nil {
			t.Fatalf("%s: no message before the close: %v", name, err)
		}
		if m.Type != app.TypeError || m.Code != "token_expired" {
			t.Fatalf("%s: %s, want error token_expired", name, m.raw)
		}
		if code, _ := c.closeCode(5 * time.Second); code != app.CloseUnauthorized {
			t.Fatalf("%s: close code %d, want 4401", name, code)
		}
		if early := time.Until(exp.Add(auth.Leeway)); early > 200*time.Millisecond {
			t.Fatalf("%s: closed %s before the token's exp + leeway", name, early)
		}
	}
	expectRefused(t, srv.addr, ticket, dialOpts{token: short}, app.CloseUnauthorized, "unauthenticated")
	expectRefused(t, srv.addr, ticket, dialOpts{ticket: spare}, app.CloseUnauthorized, "unauthenticated")
	// A socket with a valid token is untouched.
	if err := long.c.Write(context.Background(), websocket.MessageText, []byte("ping")); err != nil {
		t.Fatalf("socket with a valid token: %v", err)
	}
	if m, err := long.read(5 * time.Second); err != nil || m.Type != app.TypePong {
		t.Fatalf("socket with a valid token: %s %v", m.raw, err)
	}
}

// TestConnectionCaps: per user and per client address, refused before the upgrade (429),
// and a closed connection frees its slot.
func TestConnectionCaps(t *testing.T) {
	e := newTestEnv(t, 1)
	cfg := testConfig()
	cfg.MaxConnsPerUser, cfg.MaxConnsPerIP = 2, 3
	srv, ticket := e.startTicket(cfg, "caps")
	alice, root := e.token("alice", "user"), e.token("root", "admin")
	refused := func(o dialOpts) {
		t.Helper()
		c, resp, err := dialWS(context.Background(), srv.addr, ticket, o)
		if err == nil {
			c.close()
			t.Fatal("connection over the cap accepted")
		}
		if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
			t.Fatalf("over the cap: %v (response %v), want 429", err, resp)
		}
	}
	a1 := expectConnected(t, srv.addr, ticket, dialOpts{token: alice})
	a2 := expectConnected(t, srv.addr, ticket, dialOpts{ticket: e.wsTicket(alice)})
	defer a2.close()
	tk := e.wsTicket(alice)
	refused(dialOpts{ticket: tk}) // the user's cap, whatever the credential
	r1 := expectConnected(t, srv.addr, ticket, dialOpts{token: root})
	defer r1.close()
	refused(dialOpts{token: root}) // the address's cap (3)
	refused(dialOpts{})            // unauthenticated attempts count against the address too

	a1.close()
	deadline := time.Now().Add(5 * time.Second)
	for {
		if u, _ := srv.n.server.Connections("alice", "127.0.0.1"); u < 2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection kept its slot")
		}
		time.Sleep(10 * time.Millisecond)
	}
	// The ticket refused at the cap was not burnt.
	c := expectConnected(t, srv.addr, ticket, dialOpts{ticket: tk})
	c.close()
}

// TestConnectionCapsBehindTrustedProxy: behind a trusted proxy the per-address cap counts
// the forwarded client, and a forged X-Forwarded-For from an untrusted peer changes nothing.
func TestConnectionCapsBehindTrustedProxy(t *testing.T) {
	e := newTestEnv(t, 1)
	cfg := testConfig()
	cfg.MaxConnsPerUser, cfg.MaxConnsPerIP = 0, 1
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	trusted := e.startWith(cfg, nil, httpx.NewApp(log, nil, httpx.WithTrustedProxies([]netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")})))
	untrusted := e.startWith(cfg, nil, httpx.NewApp(log, nil, httpx.WithTrustedProxies([]netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")})))
	ticket := newTicketID("xff")
	e.append(created(ticket, "alice"))
	tok := e.token("alice", "user")

	c1 := expectConnected(t, trusted.addr, ticket, dialOpts{token: tok, xff: "203.0.113.1"})
	defer c1.close()
	c2 := expectConnected(t, trusted.addr, ticket, dialOpts{token: tok, xff: "198.51.100.7, 203.0.113.2"})
	defer c2.close()
	if _, n := trusted.n.server.Connections("", "203.0.113.2"); n != 1 {
		t.Fatalf("right-most hop not counted: %d", n)
	}
	// The same client again, whatever it forges on the left: over its cap.
	if c, resp, err := dialWS(context.Background(), trusted.addr, ticket, dialOpts{token: tok, xff: "192.0.2.99, 203.0.113.2"}); err == nil {
		c.close()
		t.Fatal("forged left-most X-Forwarded-For escaped the cap")
	} else if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("want 429: %v", err)
	}

	u1 := expectConnected(t, untrusted.addr, ticket, dialOpts{token: tok, xff: "203.0.113.1"})
	defer u1.close()
	if c, resp, err := dialWS(context.Background(), untrusted.addr, ticket, dialOpts{token: tok, xff: "203.0.113.3"}); err == nil {
		c.close()
		t.Fatal("X-Forwarded-For from an untrusted peer was believed")
	} else if resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("want 429: %v", err)
	}
}
