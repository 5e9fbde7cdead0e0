package httpx

import (
	"context"
	"log/slog"
	"net/netip"
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

// Option adjusts NewApp.
type Option func(*fiber.Config, *[]fiber.Handler)

// WithTrustedProxies makes c.IP() the real client address behind these reverse proxies: the
// right-most X-Forwarded-For hop that is not one of them (a client can put anything at the
// left of the header, only the hops our proxies appended are true). From any other peer
// the header is ignored. Nil or empty: c.IP() is the socket peer.
func WithTrustedProxies(trusted []netip.Prefix) Option {
	return func(cfg *fiber.Config, pre *[]fiber.Handler) {
		if len(trusted) == 0 {
			return
		}
		cfg.EnableTrustedProxyCheck = true
		cfg.ProxyHeader = fiber.HeaderXForwardedFor
		// With validation, Fiber falls back to the peer when the header holds no address.
		cfg.EnableIPValidation = true
		for _, p := range trusted {
			cfg.TrustedProxies = append(cfg.TrustedProxies, p.Masked().String())
		}
		*pre = append(*pre, forwardedClient(trusted))
	}
}

// forwardedClient rewrites X-Forwarded-For, for requests from a trusted proxy, to the single
// address Fiber's c.IP() must return: Fiber v2 takes the left-most value, which the client
// chooses.
func forwardedClient(trusted []netip.Prefix) fiber.Handler {
	isTrusted := func(a netip.Addr) bool {
		a = a.Unmap()
		for _, p := range trusted {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	return func(c *fiber.Ctx) error {
		peer, ok := netip.AddrFromSlice(c.Context().RemoteIP())
		if !ok || !isTrusted(peer) {
			return c.Next() // Fiber ignores the header from this peer
		}
		client := ""
		values := c.Request().Header.PeekAll(fiber.HeaderXForwardedFor)
	walk:
		for i := len(values) - 1; i >= 0; i-- {
			hops := strings.Split(string(values[i]), ",")
			for j := len(hops) - 1; j >= 0; j-- {
				a, ok := parseHop(hops[j])
				if !ok {
					break walk // not written by a proxy of ours: keep the last good hop
				}
				client = a.String()
				if !isTrusted(a) {
					break walk
				}
			}
		}
		c.Request().Header.Del(fiber.HeaderXForwardedFor)
		if client != "" {
			c.Request().Header.Set(fiber.HeaderXForwardedFor, client)
		}
		return c.Next()
	}
}

func parseHop(s string) (netip.Addr, bool) {
	s = strings.TrimSpace(s)
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap(), true
	}
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap(), true
	}
	return netip.Addr{}, false
}

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
			AllowHeaders:  "Authorization, Content-Type, Idempotency-Key, traceparent",
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
	app.Get("/healthz", func(c *fiber.Ctx) error { return c.JSON(fiber.Map{"status": "ok"}) })
	app.Get("/readyz", func(c *fiber.Ctx) error {
		ctx, cancel := context.WithTimeout(c.UserContext(), 2*time.Second)
		defer cancel()
		failed := fiber.Map{}
		for name, check := range checks {
			if err := check(ctx); err != nil {
				failed[name] = err.Error()
			}
		}
		if len(failed) > 0 {
			return c.Status(fiber.StatusServiceUnavailable).JSON(fiber.Map{"status": "unavailable", "failed": failed})
		}
		return c.JSON(fiber.Map{"status": "ready"})
	})
	app.Get("/metrics", adaptor.HTTPHandler(promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg})))
}

// WebAppCSP is the Content-Security-Policy of the web app: its own scripts, styles and
// images only (React sets element styles through the CSSOM, which style-src does not
// restrict, so no 'unsafe-inline'), API calls and WebSockets to its own origin (ws:/wss:
// because 'self' does not match WebSocket schemes in every browser), never framed.
const WebAppCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'none'; " +
	"form-action 'self'; frame-ancestors 'none'"

// webAppHeaders are set on every response of the web app (files and the index fallback).
func webAppHeaders(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentSecurityPolicy, WebAppCSP)
	c.Set(fiber.HeaderXContentTypeOptions, "nosniff")
	c.Set(fiber.HeaderReferrerPolicy, "no-referrer")
	c.Set(fiber.HeaderXFrameOptions, "DENY")
	return c.Next()
}

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
