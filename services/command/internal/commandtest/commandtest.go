// Package commandtest runs the command service for tests: wired to a real broker and a
// fresh database, with the projector running so reads see writes, and called through its
// HTTP routes (or its application, Env.Cmd.App).
package commandtest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/api/apitest"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/events"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/kafka/kafkatest"
	"github.com/ticketflow/ticketflow/libs/postgres"
	"github.com/ticketflow/ticketflow/libs/postgres/pgtest"
	"github.com/ticketflow/ticketflow/services/command/command"
	"github.com/ticketflow/ticketflow/services/projector/projector"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Env is one command instance with its broker, database and projector.
type Env struct {
	T      *testing.T
	Kafka  *kafka.Embedded
	Broker *kafkatest.Broker
	Web    *fiber.App
	Cmd    *command.Command
	Cfg    command.Config
	V      *auth.Verifier
	DB     *pgxpool.Pool
	// Alice and Bob are users' bearer tokens, Admin an admin's.
	Alice, Bob, Admin string
}

// DefaultConfig waits long for projections and appends (a loaded CI machine is slow).
var DefaultConfig = command.Config{ProjectionWait: 10 * time.Second, AppendTimeout: 10 * time.Second}

// New starts an Env with cfg; maxConns bounds the command's pool (0: pgxpool's default).
// The projector has its own pool, as it has its own process in production.
func New(t *testing.T, cfg command.Config, maxConns int32) *Env {
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
	proj := projector.New(projector.Config{Group: postgres.ProjectorConsumer}, projector.Deps{Log: log, DB: projDB, Kafka: broker.Config})
	done := make(chan struct{})
	go func() { _ = proj.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	v, _ := auth.NewVerifier("command-test-secret-command-test-secret")
	e := &Env{T: t, Cfg: cfg, V: v, DB: db, Kafka: broker.Embedded, Broker: broker}
	e.Cmd, e.Web = e.instance()
	e.Alice, _ = v.Issue("alice", auth.RoleUser, time.Hour)
	e.Bob, _ = v.Issue("bob", auth.RoleUser, time.Hour)
	e.Admin, _ = v.Issue("root", auth.RoleAdmin, time.Hour)
	return e
}

func (e *Env) instance() (*command.Command, *fiber.App) {
	log := slog.New(slog.DiscardHandler)
	c, err := command.New(e.Cfg, command.Deps{Log: log, DB: e.DB, Producer: e.Broker.Producer, Verifier: e.V, Kafka: e.Broker.Config, Resolver: DNS})
	if err != nil {
		e.T.Fatal(err)
	}
	e.T.Cleanup(c.Close)
	web := httpx.NewApp(log, nil)
	c.Service().Mount(web)
	return c, web
}

// Replica is a second command instance ("another replica", or the same process after a
// restart: nothing in memory survives) on the same database and broker.
type Replica struct {
	e   *Env
	Cmd *command.Command
	Web *fiber.App
}

// Replica starts another instance.
func (e *Env) Replica() *Replica {
	c, web := e.instance()
	return &Replica{e: e, Cmd: c, Web: web}
}

// Call makes a request of the replica (see Env.Call).
func (r *Replica) Call(token, method, path, body string, headers ...string) Reply {
	r.e.T.Helper()
	return CallWeb(r.e.T, r.Web, token, method, path, body, headers...)
}

// Reply is an answer of the API.
type Reply struct {
	Status int
	Body   map[string]any
	Header map[string]string
}

// Call makes a JSON request with token (none if "") and header name/value pairs.
func (e *Env) Call(token, method, path, body string, headers ...string) Reply {
	e.T.Helper()
	return CallWeb(e.T, e.Web, token, method, path, body, headers...)
}

// CallWeb is Call on web. Every answer is checked against api/openapi.yaml (apitest): one
// the document does not allow fails the test.
func CallWeb(t *testing.T, web *fiber.App, token, method, path, body string, headers ...string) Reply {
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
		return Reply{}
	}
	raw, _ := io.ReadAll(resp.Body)
	apitest.ValidateResponse(t, req, resp, raw)
	r := Reply{Status: resp.StatusCode, Header: map[string]string{"Idempotent-Replayed": resp.Header.Get("Idempotent-Replayed")}}
	_ = json.Unmarshal(raw, &r.Body)
	return r
}

// Code is the error code of an error answer.
func (r Reply) Code() string { return r.errorField("code") }

// Message is the message of an error answer.
func (r Reply) Message() string { return r.errorField("message") }

func (r Reply) errorField(name string) string {
	if e, ok := r.Body["error"].(map[string]any); ok {
		s, _ := e[name].(string)
		return s
	}
	return ""
}

// NewTicket creates a ticket of Alice's and returns its id.
func (e *Env) NewTicket() string {
	e.T.Helper()
	return e.Create(e.Alice, `{"title":"t"}`)
}

// Create creates a ticket with the JSON body as token's user and returns its id.
func (e *Env) Create(token, body string) string {
	e.T.Helper()
	r := e.Call(token, "POST", "/api/tickets", body)
	if r.Status != 201 {
		e.T.Fatalf("create: %d %v", r.Status, r.Body)
	}
	return r.Body["id"].(string)
}

// StartProjected starts processing ticket as token's user and waits until the run is
// projected (its events readable); it returns the run's id.
func (e *Env) StartProjected(token, ticket string) string {
	e.T.Helper()
	started := e.Call(token, "POST", "/api/tickets/processing/start", `{"ticket_id":"`+ticket+`"}`)
	if started.Status != 202 {
		e.T.Fatalf("start: %d %v", started.Status, started.Body)
	}
	run := started.Body["run_id"].(string)
	deadline := time.Now().Add(10 * time.Second)
	for e.Call(token, "GET", "/api/runs/"+run+"/events", "").Status != 200 {
		if time.Now().After(deadline) {
			e.T.Fatal("run not projected")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return run
}

// LogEnvelopes reads the whole topic as a read_committed consumer sees it.
func (e *Env) LogEnvelopes() []events.Envelope {
	e.T.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cl, err := kafka.NewClient(e.Broker.Config, kgo.ConsumeTopics(e.Broker.Config.Topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.KeepControlRecords())
	if err != nil {
		e.T.Fatal(err)
	}
	defer cl.Close()
	ends := map[int32]int64{}
	listed, err := kadm.NewClient(cl).ListCommittedOffsets(ctx, e.Broker.Config.Topic)
	if err != nil {
		e.T.Fatal(err)
	}
	listed.Each(func(o kadm.ListedOffset) { ends[o.Partition] = o.Offset })
	seen := map[int32]int64{}
	var out []events.Envelope
	done := func() bool {
		for p, end := range ends {
			if got, ok := seen[p]; end > 0 && (!ok || got < end-1) {
				return false
			}
		}
		return true
	}
	for !done() {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			e.T.Fatalf("reading the log: %v (seen %v of %v)", ctx.Err(), seen, ends)
		}
		fs.EachRecord(func(r *kgo.Record) {
			seen[r.Partition] = max(seen[r.Partition], r.Offset)
			if r.Attrs.IsControl() {
				return
			}
			if env, err := events.DecodeEnvelope(r.Value); err == nil {
				if err := apitest.CheckEnvelope(r.Value); err != nil {
					e.T.Errorf("contract: %v", err) // every appended event is one api/asyncapi.yaml allows
				}
				out = append(out, env)
			}
		})
	}
	return out
}

// fakeDNS answers the names the command tests use; others do not resolve.
type fakeDNS map[string]string

func (f fakeDNS) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	if a, ok := f[host]; ok {
		return []netip.Addr{netip.MustParseAddr(a)}, nil
	}
	return nil, errors.New("no such host")
}

// DNS is the resolver every Env uses: public and internal names the tests need.
var DNS = fakeDNS{"github.com": "140.82.121.4", "h": "93.184.216.34", "localhost": "127.0.0.1", "git.internal": "10.0.0.7",
	"metadata.internal": "169.254.169.254"}
