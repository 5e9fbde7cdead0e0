package app

import (
	"fmt"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/ticketflow/ticketflow/libs/auth"
	"github.com/ticketflow/ticketflow/libs/config"
	"github.com/ticketflow/ticketflow/libs/httpx"
)

// wsTicketConfig is read from the environment when the route is mounted.
type wsTicketConfig struct {
	// TTL is how long a WebSocket ticket stays valid before its single use (1s to 5m).
	// Short on purpose: it is a credential in a URL.
	TTL time.Duration `env:"TICKETFLOW_WS_TICKET_TTL" envDefault:"30s"`
}

type wsTicketReply struct {
	Ticket    string `json:"ticket"`
	ExpiresIn int    `json:"expires_in"`
}

// wsTicketHandler answers POST /api/ws-tickets: a short-lived single-use ticket a browser
// puts in the WebSocket URL (?ticket=) instead of its bearer token, which it cannot send as
// a header on a WebSocket. The socket it opens closes when the bearer token expires.
// A misconfigured TTL stops the process at startup.
func (s *Service) wsTicketHandler() fiber.Handler {
	cfg, err := config.Load[wsTicketConfig]()
	if err == nil && (cfg.TTL < time.Second || cfg.TTL > auth.MaxWSTicketTTL) {
		err = fmt.Errorf("TICKETFLOW_WS_TICKET_TTL must be between 1s and %s, got %s", auth.MaxWSTicketTTL, cfg.TTL)
	}
	if err != nil {
		panic(fmt.Sprintf("command: %v", err))
	}
	return func(c *fiber.Ctx) error {
		ticket, ttl, err := s.verifier.IssueWSTicket(httpx.Claims(c), cfg.TTL)
		if err != nil {
			return httpx.Errorf(fiber.StatusUnauthorized, "unauthenticated", "cannot issue a WebSocket ticket: %v", err)
		}
		c.Set(fiber.HeaderCacheControl, "no-store")
		return c.JSON(wsTicketReply{Ticket: ticket, ExpiresIn: int(ttl / time.Second)})
	}
}
