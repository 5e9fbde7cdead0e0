package notifier

import (
	"context"
	"encoding/json"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/services/notifier/adapters"
	"github.com/ticketflow/ticketflow/services/notifier/app"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/workflow"
	"github.com/twmb/franz-go/pkg/kgo"
)

const testSecret = "notifier-test-secret-0123456789abcdef"

// testEnv is a real broker (kfake over TCP) with the topic, a producer, and a token issuer.
type testEnv struct {
	t        *testing.T
	kcfg     config.Kafka
	prod     *kafka.Producer
	verifier *auth.Verifier
}

func newTestEnv(t *testing.T, partitions int32) *testEnv {
	t.Helper()
	b := kafkatest.Start(t, partitions)
	v, err := auth.NewVerifier(testSecret)
	if err != nil {
		t.Fatal(err)
	}
	return &testEnv{t: t, kcfg: b.Config, prod: b.Producer, verifier: v}
}

func (e *testEnv) token(sub, role string) string {
	tok, err := e.verifier.Issue(sub, role, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

func (e *testEnv) append(envs ...events.Envelope) []events.Position {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, env := range envs {
		apitest.ValidateEnvelope(e.t, env) // every test event is one api/asyncapi.yaml allows
	}
	pos, err := e.prod.Append(ctx, envs...)
	if err != nil {
		e.t.Fatal(err)
	}
	return pos
}

// testServer is one notifier instance on its own port.
type testServer struct {
	n      *Notifier
	reg    *prometheus.Registry
	addr   string
	cancel context.CancelFunc
	done   chan struct{}
}

// defaults is the configuration every variable unset gives.
func defaults() app.Config {
	return config.Defaults[app.Config]()
}

func testConfig() app.Config {
	cfg := defaults()
	cfg.ConnectRate = 0 // unlimited unless a test sets it
	return cfg
}

// startTicket starts a notifier with cfg and appends a ticket of alice's, its id made of
// prefix; it returns the server and the ticket id.
func (e *testEnv) startTicket(cfg app.Config, prefix string) (*testServer, string) {
	e.t.Helper()
	srv := e.start(cfg)
	ticket := newTicketID(prefix)
	e.append(created(ticket, "alice"))
	return srv, ticket
}

func (e *testEnv) start(cfg app.Config, origins ...string) *testServer {
	e.t.Helper()
	return e.startWith(cfg, nil, nil, origins...)
}

// startWith starts a notifier with a database (nil: none) on app (nil: a plain Fiber app).
func (e *testEnv) startWith(cfg app.Config, db *pgxpool.Pool, app *fiber.App, origins ...string) *testServer {
	e.t.Helper()
	if len(origins) == 0 {
		origins = []string{"http://localhost:8000"}
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		log = slog.New(slog.NewTextHandler(&testLogWriter{e.t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	}
	reg := prometheus.NewRegistry()
	n, err := New(cfg, Deps{Log: log, Verifier: e.verifier, Kafka: e.kcfg, DB: db, Registry: reg, AllowedOrigins: origins})
	if err != nil {
		e.t.Fatal(err)
	}
	if app == nil {
		app = fiber.New(fiber.Config{DisableStartupMessage: true})
	}
	n.Mount(app)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &testServer{n: n, reg: reg, addr: ln.Addr().String(), cancel: cancel, done: make(chan struct{})}
	go func() { _ = app.Listener(ln) }()
	go func() {
		defer close(s.done)
		if err := n.Run(ctx); err != nil {
			e.t.Errorf("Run: %v", err)
		}
		_ = app.ShutdownWithTimeout(2 * time.Second)
	}()
	e.t.Cleanup(s.stop)
	return s
}

func (s *testServer) stop() {
	s.cancel()
	<-s.done
}

// metric is the value of the notifier's series name (with label value label, "" for none).
func (s *testServer) metric(t *testing.T, name, label string) float64 {
	t.Helper()
	families, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if label != "" && (len(m.GetLabel()) != 1 || m.GetLabel()[0].GetValue() != label) {
				continue
			}
			if m.GetGauge() != nil {
				return m.GetGauge().GetValue()
			}
			return m.GetCounter().GetValue()
		}
	}
	return 0
}

type testLogWriter struct{ t *testing.T }

func (w *testLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

// msg is a decoded server message (the union of every field a test looks at).
type msg struct {
	Type            string `json:"type"`
	TicketID        string `json:"ticket_id"`
	Cursor          string `json:"cursor"`
	EventID         string `json:"event_id"`
	RunID           string `json:"run_id"`
	Timestamp       string `json:"timestamp"`
	Status          string `json:"status"`
	Step            string `json:"step"`
	Progress        *int   `json:"progress"`
	Message         string `json:"message"`
	Error           *string
	Level           string `json:"level"`
	Replayed        int    `json:"replayed"`
	Resumed         bool   `json:"resumed"`
	Snapshot        bool   `json:"snapshot"`
	RequestedCursor string `json:"requested_cursor"`
	Code            string `json:"code"`
	raw             []byte
}

// client is a WebSocket client built on coder/websocket (not the server's library).
type client struct {
	c   *websocket.Conn
	ctx context.Context
}

type dialOpts struct {
	token  string
	header bool   // token in the Authorization header instead of the query
	ticket string // a WebSocket ticket (?ticket=)
	xff    string // an X-Forwarded-For header
	cursor *string
	origin string
	path   string // default /ws/tickets/<ticket>
	rcvbuf int    // >0: the client's socket receive buffer (a small one makes a slow client slow at once)
}

func dialWS(ctx context.Context, addr, ticket string, o dialOpts) (*client, *http.Response, error) {
	path := o.path
	if path == "" {
		path = "/ws/tickets/" + url.PathEscape(ticket)
	}
	q := url.Values{}
	h := http.Header{}
	if o.token != "" {
		if o.header {
			h.Set("Authorization", "Bearer "+o.token)
		} else {
			q.Set("access_token", o.token)
		}
	}
	if o.ticket != "" {
		q.Set("ticket", o.ticket)
	}
	if o.xff != "" {
		h.Set("X-Forwarded-For", o.xff)
	}
	if o.cursor != nil {
		q.Set("cursor", *o.cursor)
	}
	if o.origin != "" {
		h.Set("Origin", o.origin)
	}
	u := "ws://" + addr + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	do := &websocket.DialOptions{HTTPHeader: h}
	if o.rcvbuf > 0 {
		d := &net.Dialer{}
		do.HTTPClient = &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err == nil {
				err = c.(*net.TCPConn).SetReadBuffer(o.rcvbuf)
			}
			return c, err
		}}}
	}
	c, resp, err := websocket.Dial(ctx, u, do)
	if err != nil {
		return nil, resp, err
	}
	c.SetReadLimit(1 << 22)
	return &client{c: c, ctx: ctx}, resp, nil
}

// readConnectedNoRun reads what a ticket without a run gets on connect: connected, then an
// empty replay_complete. It returns the connected message.
func (c *client) readConnectedNoRun(timeout time.Duration) (msg, error) {
	first, err := c.read(timeout)
	if err != nil || first.Type != app.TypeConnected {
		return first, err
	}
	rc, err := c.read(timeout)
	if err != nil {
		return first, err
	}
	if rc.Type != app.TypeReplayComplete || rc.Cursor != "" {
		return first, fmt.Errorf("after connected: %s, want an empty replay_complete", rc.raw)
	}
	return first, nil
}

func (c *client) read(timeout time.Duration) (msg, error) {
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	typ, data, err := c.c.Read(ctx)
	if err != nil {
		return msg{}, err
	}
	if typ != websocket.MessageText {
		return msg{}, fmt.Errorf("unexpected %v frame", typ)
	}
	// Every message a test receives must be one api/asyncapi.yaml describes.
	if err := apitest.CheckWSMessage(data); err != nil {
		return msg{}, fmt.Errorf("contract: %w", err)
	}
	var m msg
	if err := json.Unmarshal(data, &m); err != nil {
		return msg{}, fmt.Errorf("bad JSON %q: %w", data, err)
	}
	var errField struct {
		Error *string `json:"error"`
	}
	_ = json.Unmarshal(data, &errField)
	m.Error, m.raw = errField.Error, data
	return m, nil
}

// closeCode reads until the connection closes and returns its close status (-1 if none).
func (c *client) closeCode(timeout time.Duration) (websocket.StatusCode, []msg) {
	var got []msg
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		m, err := c.read(time.Until(deadline))
		if err != nil {
			return websocket.CloseStatus(err), got
		}
		got = append(got, m)
	}
	return -1, got
}

func (c *client) close() { _ = c.c.CloseNow() }

func strptr(s string) *string { return &s }

var idSeq atomic.Int64

func newTicketID(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, idSeq.Add(1))
}

// created is a TicketCreated envelope.
func created(ticket, owner string) events.Envelope {
	return events.MustNew(ticket, "", owner, &events.TicketCreatedData{Title: "t " + ticket, Owner: owner, BaseBranch: "main"})
}

// runEvents is a whole successful run as the processor appends it.
func runEvents(ticket, run, actor string) []events.Envelope {
	out := []events.Envelope{
		events.MustNew(ticket, run, actor, &events.ProcessingRequestedData{RequestedBy: actor, Reason: "start"}),
		events.MustNew(ticket, run, "processor", &events.RunStartedData{Iteration: 1, MaxIterations: 3, Executor: "simulated"}),
	}
	for _, s := range workflow.Steps[:len(workflow.Steps)-1] {
		out = append(out,
			events.MustNew(ticket, run, "processor", &events.StepStartedData{Step: s.Name, Progress: s.Progress, Message: s.Message, Iteration: 1, Attempt: 1}),
			events.MustNew(ticket, run, "processor", &events.LogEmittedData{Level: "INFO", Message: "working on " + s.Name, Step: s.Name}))
		if s.Name == workflow.RunCI.Name {
			out = append(out, events.MustNew(ticket, run, "processor", &events.CIResultData{Iteration: 1, Passed: true, DurationMS: 12}))
		}
		out = append(out, events.MustNew(ticket, run, "processor", &events.StepCompletedData{Step: s.Name, Progress: s.Progress, Iteration: 1, Attempt: 1, Outcome: "ok", DurationMS: 3}))
	}
	return append(out, events.MustNew(ticket, run, "processor", &events.RunCompletedData{Iteration: 1, Message: workflow.MessageCompleted}))
}

// logEvents returns n log lines for a ticket.
func logEvents(ticket, run string, n int) []events.Envelope {
	out := make([]events.Envelope, n)
	for i := range out {
		out[i] = events.MustNew(ticket, run, "processor", &events.LogEmittedData{Level: "INFO", Message: fmt.Sprintf("line %d", i)})
	}
	return out
}

func (e *testEnv) allEvents() []events.Event {
	e.t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(e.kcfg.Brokers...), kgo.ConsumeTopics(e.kcfg.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reader, err := adapters.NewLogReader(e.kcfg, slog.New(slog.DiscardHandler))
	if err != nil {
		e.t.Fatal(err)
	}
	defer reader.Close()
	ends, err := reader.Ends(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	want := 0
	for _, o := range ends {
		want += int(o)
	}
	var out []events.Event
	for len(out) < want {
		f := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.t.Fatalf("read log: %d of %d records", len(out), want)
		}
		f.EachRecord(func(r *kgo.Record) {
			ev, err := kafka.Event(r)
			if err != nil {
				e.t.Fatal(err)
			}
			out = append(out, ev)
		})
	}
	return out
}

// mustDial dials the stream of ticket with o, failing the test if it cannot; the client is
// closed when the test ends (closing it earlier is harmless).
func mustDial(t *testing.T, addr, ticket string, o dialOpts) *client {
	t.Helper()
	c, _, err := dialWS(context.Background(), addr, ticket, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.close)
	return c
}

// eachHistory runs f as two subtests, each on a notifier of its own: "memory" serves replays
// from its in-memory history (a ring of 1024 events per ticket), "kafka" mostly from the log
// (a ring of 2).
func (e *testEnv) eachHistory(t *testing.T, f func(t *testing.T, srv *testServer)) {
	for _, h := range []struct {
		name string
		ring int
	}{{"memory", 1024}, {"kafka", 2}} {
		t.Run(h.name, func(t *testing.T) {
			cfg := testConfig()
			cfg.HistoryPerTicket = h.ring
			f(t, e.start(cfg))
		})
	}
}
