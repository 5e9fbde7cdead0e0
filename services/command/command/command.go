// Package command is the command service, ticketflow's HTTP API: writes become events
// appended to Kafka (a 2xx means the event is durable); reads come from the projector's
// PostgreSQL tables.
//
// Rooms: ports (the Fiber routes: parse, call the application, write JSON), app (the use
// cases: Application.CreateTicket, StartProcessing(ctx, actor, ticketID, key), ...),
// adapters (all SQL and all Kafka). This package reads the configuration and wires them.
package command

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/platform"
	"github.com/ticketflow/ticketflow/libs/repourl"
	"github.com/ticketflow/ticketflow/services/command/adapters"
	"github.com/ticketflow/ticketflow/services/command/app"
	"github.com/ticketflow/ticketflow/services/command/ports"
)

// Config is read from the environment.
type Config struct {
	// Repos is the repository policy tickets are created under (TICKETFLOW_REPOSITORY_ALLOWLIST,
	// TICKETFLOW_ALLOW_PRIVATE_REPOS, TICKETFLOW_REPOSITORY_ALLOWED_NETS,
	// TICKETFLOW_FILE_REPO_ROOT; see repourl.Config): the processor applies the same again.
	Repos repourl.Config
	// ProjectionWait bounds how long a write waits for the projector to show it, so that a
	// client's next read sees its own write. The write is durable either way.
	ProjectionWait time.Duration `env:"TICKETFLOW_PROJECTION_WAIT" envDefault:"3s"`
	// AppendTimeout bounds a Kafka append before the request fails with 503.
	AppendTimeout time.Duration `env:"TICKETFLOW_APPEND_TIMEOUT" envDefault:"10s"`
	// RequestTimeout is every API request's deadline: database, locks and appends give up
	// when it passes.
	RequestTimeout time.Duration `env:"TICKETFLOW_REQUEST_TIMEOUT" envDefault:"15s"`
	// DBAcquireTimeout bounds the wait for a pool connection: past it the request fails with
	// 503 unavailable and nothing written, instead of queueing behind a saturated pool.
	DBAcquireTimeout time.Duration `env:"TICKETFLOW_DB_ACQUIRE_TIMEOUT" envDefault:"2s"`
	// WriteRate is how many writes (POSTs) a second one user may make on average, per
	// replica; 0 disables the limit.
	WriteRate float64 `env:"TICKETFLOW_WRITE_RATE" envDefault:"5"`
	// WriteBurst is how many writes a user may make at once before WriteRate applies.
	WriteBurst int `env:"TICKETFLOW_WRITE_BURST" envDefault:"20"`
	// WSTicketTTL is how long a WebSocket ticket stays valid before its single use (1s to
	// 5m; a value outside stops the process at startup). Short on purpose: it is a
	// credential in a URL.
	WSTicketTTL time.Duration `env:"TICKETFLOW_WS_TICKET_TTL" envDefault:"30s"`
	// TraceUIURL is the trace viewer the web app links a run's trace id to, {trace_id}
	// replaced by it (e.g. Jaeger's http://localhost:16686/trace/{trace_id}); empty: no link.
	TraceUIURL string `env:"TICKETFLOW_TRACE_UI_URL" envDefault:""`
	// ForgeWebhookSecret is TICKETFLOW_FORGE_WEBHOOK_SECRET: the secret the forges' webhooks (POST /api/forge/webhooks/{github,gitlab,gitea}) are signed with; empty turns them off.
	ForgeWebhookSecret string `env:"TICKETFLOW_FORGE_WEBHOOK_SECRET"`
}

// Deps are what the service drives.
type Deps struct {
	Log      *slog.Logger
	DB       *pgxpool.Pool
	Producer *kafka.Producer
	Verifier *auth.Verifier
	// Resolver looks repository hosts up (nil: the system resolver).
	Resolver repourl.Resolver
	// Kafka is the broker configuration requests with an Idempotency-Key use for their
	// transactional producers and their recovery scans.
	Kafka config.Kafka
}

// Command is the wired service: its use cases (App) and its routes.
type Command struct {
	// App is the use cases, for callers that drive them without HTTP (dev's demo ticket,
	// tests).
	App  *app.Application
	http *ports.HTTP
	log  *adapters.EventLog
	// stopListening ends the projection listener (see adapters.Projections).
	stopListening func()
}

// Build is the command service of a platform process (main.go and `ticketflow dev`).
func Build(ctx context.Context, base *platform.Base) (platform.Service, error) {
	c, err := Open(ctx, base)
	if err != nil {
		return platform.Service{}, err
	}
	svc := c.Service()
	svc.Run = func(ctx context.Context) error {
		<-ctx.Done()
		c.Close()
		return nil
	}
	return svc, nil
}

// Open is Build keeping hold of the Command, for a process that also calls its use cases
// directly (`ticketflow dev` creates its demo ticket through App) and closes it at the end.
func Open(_ context.Context, base *platform.Base) (*Command, error) {
	cfg, err := config.Load[Config]()
	if err != nil {
		return nil, err
	}
	if base.Verifier == nil {
		return nil, errors.New("TICKETFLOW_JWT_SECRET is required")
	}
	if cfg.WSTicketTTL < time.Second || cfg.WSTicketTTL > auth.MaxWSTicketTTL {
		return nil, fmt.Errorf("TICKETFLOW_WS_TICKET_TTL must be between 1s and %s, got %s", auth.MaxWSTicketTTL, cfg.WSTicketTTL)
	}
	return New(cfg, Deps{Log: base.Log, DB: base.DB, Producer: base.Producer, Verifier: base.Verifier, Kafka: base.Config.Kafka})
}

// New wires the service from a Config built in code (tests): its durations left zero take
// their defaults (config.Defaults), the other fields are used as they are (WriteRate 0: no
// limit). It fails on an invalid repository policy.
func New(cfg Config, deps Deps) (*Command, error) {
	def := config.Defaults[Config]()
	for _, d := range []struct{ field, value *time.Duration }{{&cfg.AppendTimeout, &def.AppendTimeout},
		{&cfg.RequestTimeout, &def.RequestTimeout}, {&cfg.DBAcquireTimeout, &def.DBAcquireTimeout}, {&cfg.WSTicketTTL, &def.WSTicketTTL}} {
		if *d.field <= 0 {
			*d.field = *d.value
		}
	}
	projections := adapters.NewProjections()
	store := adapters.NewStore(deps.DB, deps.Producer.Topic(), cfg.DBAcquireTimeout, projections)
	log := adapters.NewEventLog(deps.Kafka, deps.Producer)
	a, err := app.New(app.Config{Repos: cfg.Repos, ProjectionWait: cfg.ProjectionWait, AppendTimeout: cfg.AppendTimeout},
		deps.Log, store, log, deps.Resolver)
	if err != nil {
		return nil, err
	}
	h := ports.NewHTTP(ports.Config{RequestTimeout: cfg.RequestTimeout, WriteRate: cfg.WriteRate, WriteBurst: cfg.WriteBurst,
		WSTicketTTL: cfg.WSTicketTTL, TraceUIURL: cfg.TraceUIURL, ForgeWebhookSecret: cfg.ForgeWebhookSecret}, a, deps.Verifier)
	listenCtx, stopListening := context.WithCancel(context.Background())
	listening := make(chan struct{})
	go func() {
		defer close(listening)
		projections.Listen(listenCtx, deps.DB.Config().ConnConfig.Copy(), deps.Log)
	}()
	return &Command{App: a, http: h, log: log, stopListening: func() { stopListening(); <-listening }}, nil
}

// Service is the routes of /api and their liveness checks, for the platform process.
func (c *Command) Service() platform.Service {
	return platform.Service{Mount: c.http.Mount, Live: c.http.LiveChecks()}
}

// Close stops the projection listener and releases the service's own Kafka client.
func (c *Command) Close() {
	c.stopListening()
	c.log.Close()
}
