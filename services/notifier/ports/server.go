// Package ports is the notifier's transport: GET /ws/tickets and /ws/tickets/:ticket_id. It
// checks a connect before the upgrade (origin, rate, credential, connection caps), turns the
// request into an app.Request, and runs the connection's read loop; the sessions themselves,
// their replay and live messages, are the application's.
package ports

import (
	"context"
	"sync"
	"time"

	"github.com/gofiber/contrib/websocket"
	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/httpx"
	"github.com/ticketflow/ticketflow/services/notifier/app"
)

// TicketUses makes WebSocket tickets single-use (adapters.DBTicketUses, adapters.MemTicketUses).
type TicketUses interface {
	// Claim records jti as used; auth.ErrTicketReused when it was used before, another
	// error when the record cannot be made (the connect is then refused: fail closed).
	Claim(ctx context.Context, jti string, expires time.Time) error
}

// Deps are what the routes are wired to.
type Deps struct {
	Verifier *auth.Verifier
	App      *app.Notifier
	Metrics  *app.Metrics
	Tickets  TicketUses
	// AllowedOrigins are the browser origins allowed to open a WebSocket ("*" allows any).
	// Requests without an Origin header (non-browser clients) are allowed.
	AllowedOrigins []string
}

// Server serves the WebSocket routes.
type Server struct {
	cfg     app.Config
	auth    *auth.Verifier
	app     *app.Notifier
	m       *app.Metrics
	tickets TicketUses
	origins map[string]bool
	anyOrig bool
	limiter *httpx.RateLimiter
	caps    *connCaps
}

// NewServer builds the routes' state (rate limiter, connection caps) from cfg.
func NewServer(cfg app.Config, deps Deps) *Server {
	s := &Server{
		cfg:     cfg,
		auth:    deps.Verifier,
		app:     deps.App,
		m:       deps.Metrics,
		tickets: deps.Tickets,
		origins: map[string]bool{},
		limiter: httpx.NewRateLimiter(cfg.ConnectRate, max(cfg.ConnectBurst, 1)),
		caps:    newConnCaps(cfg.MaxConnsPerUser, cfg.MaxConnsPerIP),
	}
	for _, o := range deps.AllowedOrigins {
		if o == "*" {
			s.anyOrig = true
		}
		s.origins[o] = true
	}
	return s
}

// writeBufferPool lends gorilla's frame buffer only while it writes (it only writes close
// frames here): an idle connection holds no write buffer.
type writeBufferPool struct{ p sync.Pool }

func (w *writeBufferPool) Get() any  { return w.p.Get() }
func (w *writeBufferPool) Put(v any) { w.p.Put(v) }

// Mount registers GET /ws/tickets (every ticket; admins only) and GET /ws/tickets/:ticket_id.
// Origin and the per-IP connect rate are checked before the upgrade (plain HTTP 403 / 429);
// the token, the ticket and the cursor after it, with an error message and a close code a
// browser can read: 4401 unauthenticated, 4403 forbidden, 4404 unknown ticket, 4400 bad cursor.
func (s *Server) Mount(web *fiber.App) {
	wsCfg := websocket.Config{
		HandshakeTimeout: handshakeTimeout,
		ReadBufferSize:   512,
		WriteBufferSize:  512,
		WriteBufferPool:  &writeBufferPool{},
		// permessage-deflate stays off: see the README (gofiber/contrib#1136), and the writer
		// frames messages itself to batch them into one syscall.
		EnableCompression: false,
	}
	web.Get("/ws/tickets", s.precheck, websocket.New(func(c *websocket.Conn) { s.serve(c, "") }, wsCfg))
	web.Get("/ws/tickets/:ticket_id", s.precheck, websocket.New(func(c *websocket.Conn) {
		s.serve(c, c.Params("ticket_id"))
	}, wsCfg))
}

// Connections counts this replica's open connections of user and of ip.
func (s *Server) Connections(user, ip string) (byUser, byIP int) { return s.caps.counts(user, ip) }
