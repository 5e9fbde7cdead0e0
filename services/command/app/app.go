// Package app is the command service: the HTTP API. Writes become events appended to Kafka
// (a 2xx means the event is durable); reads come from the projector's PostgreSQL tables.
//
// Rooms: transport in (http.go, history.go: Fiber handlers that parse and render), use cases
// (usecases.go: StartProcessing(ctx, actor, ticketID, key) and the others, deciding what to
// append and answer; execute.go: locks, Idempotency-Key, append), adapters out (store.go and
// session.go: all SQL; eventlog.go: all Kafka).
package app

import (
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
	"github.com/ticketflow/ticketflow/libs/repourl"
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
}

// Deps are the adapters the service drives.
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

// Service holds the use cases and the HTTP handlers.
type Service struct {
	cfg       Config
	logger    *slog.Logger
	store     *store
	log       *eventLog
	verifier  *auth.Verifier
	repos     *repourl.Policy
	limiter   *rateLimiter
	deadlines *httpx.Deadlines
	faults    faultHook
}

// storeTimeout bounds storing an answer after the append; it runs even when the request's
// own context has ended, since the event is durable by then.
const storeTimeout = 5 * time.Second

// New builds the service; it fails on an invalid repository policy.
func New(cfg Config, deps Deps) (*Service, error) {
	if cfg.RequestTimeout <= 0 {
		cfg.RequestTimeout = 15 * time.Second
	}
	if cfg.DBAcquireTimeout <= 0 {
		cfg.DBAcquireTimeout = 2 * time.Second
	}
	if cfg.AppendTimeout <= 0 {
		cfg.AppendTimeout = 10 * time.Second
	}
	repos, err := repourl.New(cfg.Repos, deps.Resolver)
	if err != nil {
		return nil, err
	}
	kcfg := deps.Kafka
	kcfg.Topic = deps.Producer.Topic()
	return &Service{
		cfg: cfg, logger: deps.Log, verifier: deps.Verifier, repos: repos,
		store:     &store{db: deps.DB, topic: deps.Producer.Topic(), acquireTimeout: cfg.DBAcquireTimeout},
		log:       &eventLog{cfg: kcfg, producer: deps.Producer},
		limiter:   newRateLimiter(cfg.WriteRate, cfg.WriteBurst),
		deadlines: httpx.NewDeadlines(cfg.RequestTimeout),
	}, nil
}

// Close releases the service's own Kafka client.
func (s *Service) Close() { s.log.close() }

// LiveChecks are the service's liveness checks for /healthz: a request still running at
// three times its deadline means a handler ignores its context — the process is wedged.
func (s *Service) LiveChecks() map[string]httpx.Check {
	return map[string]httpx.Check{"requests": s.deadlines.Check(3)}
}

// Mount registers the API routes under /api.
func (s *Service) Mount(app *fiber.App) {
	api := app.Group("/api", s.deadlines.Handler(), httpx.RequireAuth(s.verifier))
	api.Get("/me", s.me)
	api.Post("/ws-tickets", s.wsTicketHandler())

	api.Post("/tickets", s.limitWrites, s.createTicket)
	api.Get("/tickets", s.listTickets)
	api.Post("/tickets/processing/start", s.limitWrites, s.startProcessing)
	api.Get("/tickets/:id", s.getTicket)
	api.Post("/tickets/:id/cancel", s.limitWrites, s.cancelRun)
	api.Post("/tickets/:id/validation", s.limitWrites, s.validateRun)
	api.Get("/tickets/:id/runs", s.listRuns)
	api.Get("/tickets/:id/events", s.ticketEvents)
	api.Get("/runs/:run_id/events", s.runEvents)
	api.Get("/runs/:run_id/artifacts", s.listArtifacts)
	api.Get("/runs/:run_id/artifacts/:name", s.getArtifact)
	api.Get("/analytics/steps", s.stepAnalytics)
	api.All("/*", func(c *fiber.Ctx) error { return httpx.NotFound("no such endpoint: %s %s", c.Method(), c.Path()) })
}

func (s *Service) me(c *fiber.Ctx) error {
	claims := httpx.Claims(c)
	return c.JSON(fiber.Map{"sub": claims.Subject(), "role": claims.Role})
}
