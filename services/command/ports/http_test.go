package ports_test

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/command/command"
	"github.com/ticketflow/ticketflow/services/command/internal/commandtest"
)

// newEnv is the command service with its broker, database and projector (commandtest).
func newEnv(t *testing.T) *commandtest.Env {
	return commandtest.New(t, commandtest.DefaultConfig, 0)
}

func TestAuthAndValidationMatrix(t *testing.T) {
	e := newEnv(t)
	id := e.Create(e.Alice, `{"title":"mine","repository_url":"https://github.com/a/b.git"}`)
	expired, _ := e.V.Issue("alice", auth.RoleUser, -time.Hour)

	for _, tc := range []struct {
		name, token, method, path, body string
		status                          int
		code                            string
	}{
		{"no token", "", "GET", "/api/tickets", "", 401, "unauthenticated"},
		{"expired token", expired, "GET", "/api/tickets", "", 401, "unauthenticated"},
		{"garbage token", "x.y.z", "GET", "/api/tickets", "", 401, "unauthenticated"},
		{"owner reads", e.Alice, "GET", "/api/tickets/" + id, "", 200, ""},
		{"admin reads", e.Admin, "GET", "/api/tickets/" + id, "", 200, ""},
		{"other user refused", e.Bob, "GET", "/api/tickets/" + id, "", 403, "forbidden"},
		{"other user cannot start", e.Bob, "POST", "/api/tickets/processing/start", `{"ticket_id":"` + id + `"}`, 403, "forbidden"},
		{"unknown ticket", e.Alice, "POST", "/api/tickets/processing/start", `{"ticket_id":"nope"}`, 404, "not_found"},
		{"malformed json", e.Alice, "POST", "/api/tickets", `{"title":`, 400, "bad_request"},
		{"unknown field", e.Alice, "POST", "/api/tickets", `{"title":"x","admin":true}`, 400, "bad_request"},
		{"missing title", e.Alice, "POST", "/api/tickets", `{"title":"  "}`, 422, "invalid_field"},
		{"option injection", e.Alice, "POST", "/api/tickets", `{"title":"x","repository_url":"--upload-pack=evil"}`, 422, "invalid_field"},
		{"credentials in url", e.Alice, "POST", "/api/tickets", `{"title":"x","repository_url":"https://u:p@h/r"}`, 422, "invalid_field"},
		{"file url refused", e.Alice, "POST", "/api/tickets", `{"title":"x","repository_url":"file:///tmp/r"}`, 422, "invalid_field"},
		{"bad branch", e.Alice, "POST", "/api/tickets", `{"title":"x","base_branch":"-f"}`, 422, "invalid_field"},
		{"cancel without run", e.Alice, "POST", "/api/tickets/" + id + "/cancel", ``, 409, "no_active_run"},
		{"validate idle ticket", e.Alice, "POST", "/api/tickets/" + id + "/validation", `{"decision":"approve"}`, 409, "not_awaiting_validation"},
		{"bad decision", e.Alice, "POST", "/api/tickets/" + id + "/validation", `{"decision":"maybe"}`, 422, "invalid_field"},
		{"bad cursor", e.Alice, "GET", "/api/tickets/" + id + "/events?after=zzz", "", 422, "invalid_field"},
		{"unknown endpoint", e.Alice, "GET", "/api/nothing", "", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.Call(tc.token, tc.method, tc.path, tc.body)
			if r.Status != tc.status || (tc.code != "" && r.Code() != tc.code) {
				t.Fatalf("%s %s → %d %v, want %d %s", tc.method, tc.path, r.Status, r.Body, tc.status, tc.code)
			}
		})
	}
	// Oversized bodies over a real socket (fasthttp refuses them before the handler).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.Web.Listener(ln) }()
	// Only the headers are sent: the server answers from the announced length and closes, so
	// a client still writing the body could see a reset instead of the answer.
	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(conn, "POST /api/tickets HTTP/1.1\r\nHost: %s\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n",
		ln.Addr(), e.Alice, httpx.BodyLimit+1)
	if resp, err := http.ReadResponse(bufio.NewReader(conn), nil); err != nil || resp.StatusCode != 413 {
		t.Fatalf("oversized body: %v %v", resp, err)
	}
	// Users list only their own tickets; admins see all.
	e.Call(e.Bob, "POST", "/api/tickets", `{"title":"bob's"}`)
	if n := len(e.Call(e.Alice, "GET", "/api/tickets", "").Body["tickets"].([]any)); n != 1 {
		t.Fatalf("alice sees %d tickets, want 1", n)
	}
	if n := len(e.Call(e.Admin, "GET", "/api/tickets", "").Body["tickets"].([]any)); n != 2 {
		t.Fatalf("admin sees %d tickets, want 2", n)
	}
}

func TestStartIsSingleAndIdempotent(t *testing.T) {
	e := newEnv(t)
	id := e.Call(e.Alice, "POST", "/api/tickets", `{"title":"t"}`).Body["id"].(string)
	body := `{"ticket_id":"` + id + `"}`
	first := e.Call(e.Alice, "POST", "/api/tickets/processing/start", body, "Idempotency-Key", "k1")
	if first.Status != 202 || first.Body["status"] != "PENDING" || first.Body["websocket_url"] != "/ws/tickets/"+id {
		t.Fatalf("start: %d %v", first.Status, first.Body)
	}
	// Same key, same body: the first answer again, and no second event.
	again := e.Call(e.Alice, "POST", "/api/tickets/processing/start", body, "Idempotency-Key", "k1")
	if again.Status != 202 || again.Body["run_id"] != first.Body["run_id"] || again.Header["Idempotent-Replayed"] != "true" {
		t.Fatalf("replay: %d %v", again.Status, again.Body)
	}
	// Same key, different request: refused.
	if r := e.Call(e.Alice, "POST", "/api/tickets", `{"title":"other"}`, "Idempotency-Key", "k1"); r.Status != 422 || r.Code() != "idempotency_key_reused" {
		t.Fatalf("reused key: %d %v", r.Status, r.Body)
	}
	// Without a key, a second start while the run is active is a conflict.
	if r := e.Call(e.Alice, "POST", "/api/tickets/processing/start", body); r.Status != 409 || r.Code() != "run_active" {
		t.Fatalf("second start: %d %v", r.Status, r.Body)
	}
	var requests int
	if err := e.DB.QueryRow(context.Background(), `SELECT count(*) FROM ticket_events WHERE ticket_id = $1 AND type = 'TicketProcessingRequested'`, id).Scan(&requests); err != nil {
		t.Fatal(err)
	}
	if requests != 1 {
		t.Fatalf("%d TicketProcessingRequested events, want 1", requests)
	}
	// The audit trail pages by cursor and exports NDJSON.
	page := e.Call(e.Alice, "GET", "/api/tickets/"+id+"/events?limit=1", "")
	evs := page.Body["events"].([]any)
	if len(evs) != 1 || page.Body["next_cursor"] == nil {
		t.Fatalf("page: %v", page.Body)
	}
	rest := e.Call(e.Alice, "GET", "/api/tickets/"+id+"/events?after="+page.Body["next_cursor"].(string), "")
	if n := len(rest.Body["events"].([]any)); n != 1 {
		t.Fatalf("after cursor: %d events, want 1", n)
	}
}

// With the broker gone, a write answers 503 within the append timeout, and the request is not
// acknowledged as done.
func TestBrokerDownIs503(t *testing.T) {
	e := commandtest.New(t, command.Config{ProjectionWait: 5 * time.Second, AppendTimeout: 2 * time.Second}, 0)
	if r := e.Call(e.Alice, "POST", "/api/tickets", `{"title":"before"}`); r.Status != 201 {
		t.Fatalf("create: %d %v", r.Status, r.Body)
	}
	e.Kafka.Close()
	start := time.Now()
	r := e.Call(e.Alice, "POST", "/api/tickets", `{"title":"during outage"}`, "Idempotency-Key", "outage-1")
	// "unavailable" when the client could fail the record before sending it, "append_unconfirmed"
	// when a request may have reached the dying broker: either way 503, promptly.
	if r.Status != 503 || (r.Code() != "unavailable" && r.Code() != "append_unconfirmed") {
		t.Fatalf("create with the broker down: %d %v, want 503", r.Status, r.Body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("503 took %v", d)
	}
	// The key is free again: a retry is not answered from a stored failure.
	var n int
	_ = e.DB.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys WHERE key = 'outage-1'`).Scan(&n)
	if n != 0 {
		t.Fatalf("failed request left its idempotency key behind")
	}
}
