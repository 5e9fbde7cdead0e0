// Package app is the command service: the HTTP API. Writes become events appended to Kafka
// (a 2xx means the event is durable); reads come from the projector's PostgreSQL tables.
package app

import (
	"log/slog"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/libs/kafka"
)

// Config is read from the environment.
type Config struct {
	// AllowFileRepos lets tickets use file:// repositories (development and tests only).
	AllowFileRepos bool `env:"TICKETFLOW_ALLOW_FILE_REPOS" envDefault:"false"`
	// ProjectionWait bounds how long a write waits for the projector to show it, so that a
	// client's next read sees its own write. The write is durable either way.
	ProjectionWait time.Duration `env:"TICKETFLOW_PROJECTION_WAIT" envDefault:"3s"`
	// AppendTimeout bounds a Kafka append before the request fails with 503.
	AppendTimeout time.Duration `env:"TICKETFLOW_APPEND_TIMEOUT" envDefault:"10s"`
}

// Deps are the adapters the service drives.
type Deps struct {
	Log      *slog.Logger
	DB       *pgxpool.Pool
	Producer *kafka.Producer
	Verifier *auth.Verifier
}

// Service holds the HTTP handlers.
type Service struct {
	cfg      Config
	log      *slog.Logger
	store    *store
	producer *kafka.Producer
	verifier *auth.Verifier
}

// New builds the service.
func New(cfg Config, deps Deps) *Service {
	return &Service{cfg: cfg, log: deps.Log, store: &store{db: deps.DB, topic: deps.Producer.Topic()}, producer: deps.Producer, verifier: deps.Verifier}
}

// Mount registers the API routes under /api.
func (s *Service) Mount(app *fiber.App) {
	api := app.Group("/api", httpx.RequireAuth(s.verifier))
	api.Get("/me", s.me)
	api.Post("/ws-tickets", s.wsTicketHandler())

	api.Post("/tickets", s.idempotent(s.createTicket))
	api.Get("/tickets", s.listTickets)
	api.Post("/tickets/processing/start", s.idempotent(s.startProcessing))
	api.Get("/tickets/:id", s.getTicket)
	api.Post("/tickets/:id/cancel", s.idempotent(s.cancelRun))
	api.Post("/tickets/:id/validation", s.idempotent(s.validateRun))
	api.Get("/tickets/:id/runs", s.listRuns)
	api.Get("/tickets/:id/events", s.ticketEvents)
	api.Get("/runs/:run_id/events", s.runEvents)
	api.Get("/analytics/steps", s.stepAnalytics)
	api.All("/*", func(c *fiber.Ctx) error { return httpx.NotFound("no such endpoint: %s %s", c.Method(), c.Path()) })
}

func (s *Service) me(c *fiber.Ctx) error {
	claims := httpx.Claims(c)
	return c.JSON(fiber.Map{"sub": claims.Subject(), "role": claims.Role})
}
