package httpx

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/middleware/adaptor"
	"github.com/gofiber/fiber/v2/middleware/cors"
	"github.com/gofiber/fiber/v2/middleware/recover"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// BodyLimit is the largest request body accepted (413 beyond it).
const BodyLimit = 256 * 1024

// NewApp returns a Fiber app with ticketflow's error rendering, panic recovery, a body
// limit and CORS for the allowed origins.
func NewApp(log *slog.Logger, allowedOrigins []string, opts ...Option) *fiber.App {
	cfg := fiber.Config{
		ErrorHandler:          ErrorHandler(log),
		BodyLimit:             BodyLimit,
		DisableStartupMessage: true,
		ReadTimeout:           30 * time.Second,
		IdleTimeout:           120 * time.Second,
	}
	var pre []fiber.Handler
	for _, o := range opts {
		o(&cfg, &pre)
	}
	app := fiber.New(cfg)
	for _, h := range pre {
		app.Use(h)
	}
	app.Use(recover.New())
	if len(allowedOrigins) > 0 {
		app.Use(cors.New(cors.Config{
			AllowOrigins:  strings.Join(allowedOrigins, ","),
			AllowHeaders:  "Authorization, Content-Type, Idempotency-Key, traceparent, tracestate",
			ExposeHeaders: "Location, Idempotent-Replayed",
		}))
	}
	return app
}

// NewRegistry is a Prometheus registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Check is one readiness condition; it returns nil when ready.
type Check func(ctx context.Context) error

// MountOps adds /healthz (the process answers), /readyz (every check passes) and /metrics.
func MountOps(app *fiber.App, reg *prometheus.Registry, checks map[string]Check) {
	MountOpsLive(app, reg, checks, nil)
}

// MountOpsLive is MountOps with liveness checks: /healthz fails (503) when one of live
// fails, so an orchestrator restarts a wedged process. Liveness checks must only fail for
// what a restart cures, never because a dependency is down (that is readiness).
func MountOpsLive(app *fiber.App, reg *prometheus.Registry, checks, live map[string]Check) {
	app.Get("/healthz", func(c *fiber.Ctx) error { return runChecks(c, live, "ok") })
	app.Get("/readyz", func(c *fiber.Ctx) error { return runChecks(c, checks, "ready") })
	// OpenMetrics when the scraper asks for it: exemplars (trace ids) exist only there.
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg, EnableOpenMetrics: true})))
}

// runChecks runs every check concurrently within one bound, so a hanging check cannot hang
// the probe itself.
func runChecks(c *fiber.Ctx, checks map[string]Check, okStatus string) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), checkTimeout)
	defer cancel()
	type result struct {
		name string
		err  error
	}
	results := make(chan result, len(checks))
	for name, check := range checks {
		go func() { results <- result{name, check(ctx)} }()
	}
	failed := fiber.Map{}
	answered := map[string]bool{}
wait:
	for range checks {
		select {
		case r := <-results:
			answered[r.name] = true
			if r.err != nil {
				failed[r.name] = r.err.Error()
			}
		case <-ctx.Done():
			for name := range checks {
				if !answered[name] {
					failed[name] = "check did not answer within " + checkTimeout.String()
				}
			}
			break wait
		}
	}
	if len(failed) > 0 {
		return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "failed": failed})
	}
	return c.JSON(fiber.Map{"status": okStatus})
}

// checkTimeout bounds a probe; orchestrators time probes out at a few seconds.
const checkTimeout = 3 * time.Second

// MountWebApp serves a built single-page app from dir at /, falling back to index.html for
// client-side routes, with WebAppCSP. API, WebSocket and ops paths are never shadowed.
func MountWebApp(app *fiber.App, dir string) bool {
	index := filepath.Join(dir, "index.html")
	if _, err := os.Stat(index); err != nil {
		return false
	}
	app.Use(webAppHeaders)
	app.Static("/", dir, fiber.Static{Compress: true, MaxAge: 0})
	app.Get("/*", func(c *fiber.Ctx) error {
		p := c.Path()
		if strings.HasPrefix(p, "/api/") || strings.HasPrefix(p, "/ws/") || p == "/metrics" {
			return c.Next()
		}
		c.Set(fiber.HeaderCacheControl, "no-cache")
		return c.SendFile(index)
	})
	return true
}
