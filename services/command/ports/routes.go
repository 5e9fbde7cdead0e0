// Package ports is the command service's transport in: the Fiber routes of /api. Each
// handler parses and validates the request, calls the application (package app) and writes
// its answer as JSON or the API's error shape. No SQL and no Kafka here.
package ports

import (
	"time"

	"github.com/gofiber/fiber/v2"
	contract "github.com/ticketflow/ticketflow/api"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/command/app"
)

// Config is what the routes need to know (package command reads it from the environment).
type Config struct {
	// RequestTimeout is every API request's deadline.
	RequestTimeout time.Duration
	// WriteRate is how many writes a second one user may make on average; 0 disables it.
	WriteRate float64
	// WriteBurst is how many writes a user may make at once before WriteRate applies.
	WriteBurst int
	// WSTicketTTL is how long a WebSocket ticket stays valid before its single use.
	WSTicketTTL time.Duration
	// TraceUIURL links a run's trace id to a trace viewer ({trace_id} replaced); "" for none.
	TraceUIURL string
	// ForgeWebhookSecret verifies the forges' webhooks; "" turns them off (404).
	ForgeWebhookSecret string
}

// HTTP is the API's routes over one application.
type HTTP struct {
	cfg       Config
	app       *app.Application
	verifier  *auth.Verifier
	limiter   *httpx.RateLimiter
	deadlines *httpx.Deadlines
}

// NewHTTP serves a; verifier authenticates every request and issues WebSocket tickets.
func NewHTTP(cfg Config, a *app.Application, verifier *auth.Verifier) *HTTP {
	return &HTTP{cfg: cfg, app: a, verifier: verifier,
		limiter: httpx.NewRateLimiter(cfg.WriteRate, cfg.WriteBurst), deadlines: httpx.NewDeadlines(cfg.RequestTimeout)}
}

// LiveChecks are the routes' liveness checks for /healthz: a request still running at
// three times its deadline means a handler ignores its context — the process is wedged.
func (h *HTTP) LiveChecks() map[string]httpx.Check {
	return map[string]httpx.Check{"requests": h.deadlines.Check(3)}
}

// Mount registers the API routes under /api, and GET /api/openapi.json (api/openapi.yaml
// as JSON, without authentication: it is the contract, not data).
func (h *HTTP) Mount(web *fiber.App) {
	web.Get("/api/openapi.json", openAPI)
	// Authenticated by the delivery's signature, not a bearer token: before the group's auth.
	web.Post("/api/forge/webhooks/:forge", h.deadlines.Handler(), h.forgeWebhook)
	api := web.Group("/api", h.deadlines.Handler(), httpx.RequireAuth(h.verifier))
	api.Get("/me", h.me)
	api.Post("/ws-tickets", h.wsTicket)

	api.Post("/tickets", h.limitWrites, h.createTicket)
	api.Get("/tickets", h.listTickets)
	api.Post("/tickets/processing/start", h.limitWrites, h.startProcessing)
	api.Get("/tickets/:id", h.getTicket)
	api.Post("/tickets/:id/cancel", h.limitWrites, h.cancelRun)
	api.Post("/tickets/:id/validation", h.limitWrites, h.validateRun)
	api.Get("/tickets/:id/runs", h.listRuns)
	api.Get("/tickets/:id/events", h.ticketEvents)
	api.Get("/runs/:run_id/events", h.runEvents)
	api.Get("/runs/:run_id/artifacts", h.listArtifacts)
	api.Get("/runs/:run_id/artifacts/:name", h.getArtifact)
	api.Get("/analytics/steps", h.stepAnalytics)
	api.Get("/analytics/llm", h.llmAnalytics)
	api.All("/*", func(c *fiber.Ctx) error { return httpx.NotFound("no such endpoint: %s %s", c.Method(), c.Path()) })
}

func openAPI(c *fiber.Ctx) error {
	doc, err := contract.OpenAPIJSON()
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Set(fiber.HeaderCacheControl, "no-cache")
	return c.Send(doc)
}

func (h *HTTP) me(c *fiber.Ctx) error {
	claims := httpx.Claims(c)
	me := fiber.Map{"sub": claims.Subject(), "role": claims.Role}
	if h.cfg.TraceUIURL != "" {
		// A deployment setting every signed-in page needs, and /api/me is what they all load.
		me["trace_ui_url"] = h.cfg.TraceUIURL
	}
	return c.JSON(me)
}

func actorOf(c *fiber.Ctx) app.Actor {
	claims := httpx.Claims(c)
	return app.Actor{Subject: claims.Subject(), Admin: claims.IsAdmin()}
}
