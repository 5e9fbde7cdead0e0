package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/services/command/app"
	projector "github.com/ticketflow/ticketflow/services/projector/app"
)

type env struct {
	t      *testing.T
	kafka  *kafka.Embedded
	broker *kafkatest.Broker
	web    *fiber.App
	svc    *app.Service
	cfg    app.Config
	v      *auth.Verifier
	db     *pgxpool.Pool
	alice  string
	bob    string
	admin  string
}

// newEnv wires the command service to a real broker and database, with the projector
// running so reads see writes.
func newEnv(t *testing.T) *env {
	return newEnvWith(t, app.Config{ProjectionWait: 10 * time.Second, AppendTimeout: 10 * time.Second})
}

func newEnvWith(t *testing.T, cfg app.Config) *env {
	t.Helper()
	return newEnvPool(t, cfg, 0)
}

// newEnvPool is newEnvWith with the command's pool bounded to maxConns (0: pgxpool's
// default). The projector has its own pool, as it has its own process in production.
func newEnvPool(t *testing.T, cfg app.Config, maxConns int32) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	broker := kafkatest.Start(t, 2)
	dsn := pgtest.NewDatabase(t)
	pcfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		t.Fatal(err)
	}
	if maxConns > 0 {
		pcfg.MaxConns = maxConns
	}
	db, err := pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(db.Close)
	projDB, err := pgxpool.New(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(projDB.Close)
	log := slog.New(slog.DiscardHandler)
	proj := projector.New(projector.Config{Group: "projector"}, projector.Deps{Log: log, DB: projDB, Kafka: broker.Config})
	done := make(chan struct{})
	go func() { _ = proj.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	v, _ := auth.NewVerifier("command-test-secret-command-test-secret")
	web := httpx.NewApp(log, nil)
	svc, err := app.New(cfg, app.Deps{Log: log, DB: db, Producer: broker.Producer, Verifier: v, Kafka: broker.Config, Resolver: testDNS})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(svc.Close)
	svc.Mount(web)
	e := &env{t: t, web: web, svc: svc, cfg: cfg, v: v, db: db, kafka: broker.Embedded, broker: broker}
	e.alice, _ = v.Issue("alice", auth.RoleUser, time.Hour)
	e.bob, _ = v.Issue("bob", auth.RoleUser, time.Hour)
	e.admin, _ = v.Issue("root", auth.RoleAdmin, time.Hour)
	return e
}

type reply struct {
	Status int
	Body   map[string]any
	Header map[string]string
}

func (e *env) call(token, method, path, body string, headers ...string) reply {
	e.t.Helper()
	return callWeb(e.t, e.web, token, method, path, body, headers...)
}

func callWeb(t *testing.T, web *fiber.App, token, method, path, body string, headers ...string) reply {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewBufferString(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	req.Header.Set("Content-Type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := web.Test(req, 30000)
	if err != nil {
		t.Error(err)
		return reply{}
	}
	raw, _ := io.ReadAll(resp.Body)
	r := reply{Status: resp.StatusCode, Header: map[string]string{"Idempotent-Replayed": resp.Header.Get("Idempotent-Replayed")}}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

func (r reply) code() string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e["code"].(string)
		return s
	}
	return ""
}

func TestAuthAndValidationMatrix(t *testing.T) {
	e := newEnv(t)
	created := e.call(e.alice, "POST", "/api/tickets", `{"title":"mine","repository_url":"https://github.com/a/b.git"}`)
	if created.Status != 201 {
		t.Fatalf("create: %d %v", created.Status, created.Body)
	}
	id := created.Body["id"].(string)
	expired, _ := e.v.Issue("alice", auth.RoleUser, -time.Hour)

	for _, tc := range []struct {
		name, token, method, path, body string
		status                          int
		code                            string
	}{
		{"no token", "", "GET", "/api/tickets", "", 401, "unauthenticated"},
		{"expired token", expired, "GET", "/api/tickets", "", 401, "unauthenticated"},
		{"garbage token", "x.y.z", "GET", "/api/tickets", "", 401, "unauthenticated"},
		{"owner reads", e.alice, "GET", "/api/tickets/" + id, "", 200, ""},
		{"admin reads", e.admin, "GET", "/api/tickets/" + id, "", 200, ""},
		{"other user refused", e.bob, "GET", "/api/tickets/" + id, "", 403, "forbidden"},
		{"other user cannot start", e.bob, "POST", "/api/tickets/processing/start", `{"ticket_id":"` + id + `"}`, 403, "forbidden"},
		{"unknown ticket", e.alice, "POST", "/api/tickets/processing/start", `{"ticket_id":"nope"}`, 404, "not_found"},
		{"malformed json", e.alice, "POST", "/api/tickets", `{"title":`, 400, "bad_request"},
		{"unknown field", e.alice, "POST", "/api/tickets", `{"title":"x","admin":true}`, 400, "bad_request"},
		{"missing title", e.alice, "POST", "/api/tickets", `{"title":"  "}`, 422, "invalid_field"},
		{"option injection", e.alice, "POST", "/api/tickets", `{"title":"x","repository_url":"--upload-pack=evil"}`, 422, "invalid_field"},
		{"credentials in url", e.alice, "POST", "/api/tickets", `{"title":"x","repository_url":"https://u:p@h/r"}`, 422, "invalid_field"},
		{"file url refused", e.alice, "POST", "/api/tickets", `{"title":"x","repository_url":"file:///tmp/r"}`, 422, "invalid_field"},
		{"bad branch", e.alice, "POST", "/api/tickets", `{"title":"x","base_branch":"-f"}`, 422, "invalid_field"},
		{"cancel without run", e.alice, "POST", "/api/tickets/" + id + "/cancel", ``, 409, "no_active_run"},
		{"validate idle ticket", e.alice, "POST", "/api/tickets/" + id + "/validation", `{"decision":"approve"}`, 409, "not_awaiting_validation"},
		{"bad decision", e.alice, "POST", "/api/tickets/" + id + "/validation", `{"decision":"maybe"}`, 422, "invalid_field"},
		{"bad cursor", e.alice, "GET", "/api/tickets/" + id + "/events?after=zzz", "", 422, "invalid_field"},
		{"unknown endpoint", e.alice, "GET", "/api/nothing", "", 404, "not_found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := e.call(tc.token, tc.method, tc.path, tc.body)
			if r.Status != tc.status || (tc.code != "" && r.code() != tc.code) {
				t.Fatalf("%s %s → %d %v, want %d %s", tc.method, tc.path, r.Status, r.Body, tc.status, tc.code)
			}
		})
	}
	// Oversized bodies over a real socket (fasthttp refuses them before the handler).
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = e.web.Listener(ln) }()
	big := `{"title":"x","description":"` + string(bytes.Repeat([]byte("a"), httpx.BodyLimit)) + `"}`
	req, _ := http.NewRequest("POST", "http://"+ln.Addr().String()+"/api/tickets", bytes.NewBufferString(big))
	req.Header.Set("Authorization", "Bearer "+e.alice)
	req.Header.Set("Content-Type", "application/json")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 413 {
		t.Fatalf("oversized body: %v %v", resp, err)
	}
	// Users list only their own tickets; admins see all.
	e.call(e.bob, "POST", "/api/tickets", `{"title":"bob's"}`)
	if n := len(e.call(e.alice, "GET", "/api/tickets", "").Body["tickets"].([]any)); n != 1 {
		t.Fatalf("alice sees %d tickets, want 1", n)
	}
	if n := len(e.call(e.admin, "GET", "/api/tickets", "").Body["tickets"].([]any)); n != 2 {
		t.Fatalf("admin sees %d tickets, want 2", n)
	}
}

func TestStartIsSingleAndIdempotent(t *testing.T) {
	e := newEnv(t)
	id := e.call(e.alice, "POST", "/api/tickets", `{"title":"t"}`).Body["id"].(string)
	body := `{"ticket_id":"` + id + `"}`
	first := e.call(e.alice, "POST", "/api/tickets/processing/start", body, "Idempotency-Key", "k1")
	if first.Status != 202 || first.Body["status"] != "PENDING" || first.Body["websocket_url"] != "/ws/tickets/"+id {
		t.Fatalf("start: %d %v", first.Status, first.Body)
	}
	// Same key, same body: the first answer again, and no second event.
	again := e.call(e.alice, "POST", "/api/tickets/processing/start", body, "Idempotency-Key", "k1")
	if again.Status != 202 || again.Body["run_id"] != first.Body["run_id"] || again.Header["Idempotent-Replayed"] != "true" {
		t.Fatalf("replay: %d %v", again.Status, again.Body)
	}
	// Same key, different request: refused.
	if r := e.call(e.alice, "POST", "/api/tickets", `{"title":"other"}`, "Idempotency-Key", "k1"); r.Status != 422 || r.code() != "idempotency_key_reused" {
		t.Fatalf("reused key: %d %v", r.Status, r.Body)
	}
	// Without a key, a second start while the run is active is a conflict.
	if r := e.call(e.alice, "POST", "/api/tickets/processing/start", body); r.Status != 409 || r.code() != "run_active" {
		t.Fatalf("second start: %d %v", r.Status, r.Body)
	}
	var requests int
	if err := e.db.QueryRow(context.Background(), `SELECT count(*) FROM ticket_events WHERE ticket_id = $1 AND type = 'TicketProcessingRequested'`, id).Scan(&requests); err != nil {
		t.Fatal(err)
	}
	if requests != 1 {
		t.Fatalf("%d TicketProcessingRequested events, want 1", requests)
	}
	// The audit trail pages by cursor and exports NDJSON.
	page := e.call(e.alice, "GET", "/api/tickets/"+id+"/events?limit=1", "")
	evs := page.Body["events"].([]any)
	if len(evs) != 1 || page.Body["next_cursor"] == nil {
		t.Fatalf("page: %v", page.Body)
	}
	rest := e.call(e.alice, "GET", "/api/tickets/"+id+"/events?after="+page.Body["next_cursor"].(string), "")
	if n := len(rest.Body["events"].([]any)); n != 1 {
		t.Fatalf("after cursor: %d events, want 1", n)
	}
}

// With the broker gone, a write answers 503 within the append timeout, and the request is not
// acknowledged as done.
func TestBrokerDownIs503(t *testing.T) {
	e := newEnvWith(t, app.Config{ProjectionWait: 5 * time.Second, AppendTimeout: 2 * time.Second})
	if r := e.call(e.alice, "POST", "/api/tickets", `{"title":"before"}`); r.Status != 201 {
		t.Fatalf("create: %d %v", r.Status, r.Body)
	}
	e.kafka.Close()
	start := time.Now()
	r := e.call(e.alice, "POST", "/api/tickets", `{"title":"during outage"}`, "Idempotency-Key", "outage-1")
	// "unavailable" when the client could fail the record before sending it, "append_unconfirmed"
	// when a request may have reached the dying broker: either way 503, promptly.
	if r.Status != 503 || (r.code() != "unavailable" && r.code() != "append_unconfirmed") {
		t.Fatalf("create with the broker down: %d %v, want 503", r.Status, r.Body)
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("503 took %v", d)
	}
	// The key is free again: a retry is not answered from a stored failure.
	var n int
	_ = e.db.QueryRow(context.Background(), `SELECT count(*) FROM idempotency_keys WHERE key = 'outage-1'`).Scan(&n)
	if n != 0 {
		t.Fatalf("failed request left its idempotency key behind")
	}
}
